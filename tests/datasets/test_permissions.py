"""Every dataset endpoint: outsider 404, wrong role 403, and nothing changes."""

from __future__ import annotations

import pytest

from datasets.models import Dataset, DatasetVersion, Recipe, SqlConnection
from datasets.services import dataset_create, sql_connection_create, version_create_from_frame
from tests.datasets.helpers import csv_upload, messy_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def objs(team):
    ds = dataset_create(project=team.project, name="d", created_by=team.owner)
    v = version_create_from_frame(dataset=ds, frame=messy_frame(40), created_by=team.owner, enqueue_profile=False)
    recipe = Recipe.objects.create(project=team.project, name="r", steps=[{"op": "drop_duplicates"}])
    conn = sql_connection_create(
        project=team.project, name="c", dsn="postgresql://u:p@db.example.com/x", actor=team.owner
    )
    return {"dataset": ds, "version": v, "recipe": recipe, "conn": conn}


READS = [
    "/api/v1/datasets/{dataset}/",
    "/api/v1/dataset-versions/{version}/",
    "/api/v1/dataset-versions/{version}/rows/",
    "/api/v1/dataset-versions/{version}/export/",
    "/api/v1/recipes/{recipe}/",
    "/api/v1/sql-connections/{conn}/",
    "/datasets/{dataset}/",
    "/dataset-versions/{version}/",
]


def fmt(url, objs):
    return url.format(**{k: o.pk for k, o in objs.items()})


@pytest.mark.parametrize("url", READS)
def test_outsider_gets_404_on_reads(api, client, team, objs, url):
    if url.startswith("/api/"):
        assert api("outsider").get(fmt(url, objs)).status_code == 404
    else:
        client.force_login(team.outsider)
        assert client.get(fmt(url, objs)).status_code == 404


@pytest.mark.parametrize("url", READS)
def test_viewer_can_read(api, client, team, objs, url):
    if url.startswith("/api/"):
        assert api("viewer").get(fmt(url, objs)).status_code == 200
    else:
        client.force_login(team.viewer)
        assert client.get(fmt(url, objs)).status_code == 200


WRITES = [
    ("/api/v1/datasets/{dataset}/rows/", {"rows": [{"age": 1.0}]}),
    ("/api/v1/datasets/{dataset}/versions/", {"source_url": "https://example.com/x.csv"}),
    ("/api/v1/dataset-versions/{version}/split/", {"strategy": "random"}),
    ("/api/v1/dataset-versions/{version}/target/", {"target": "churn"}),
]


@pytest.mark.parametrize(("url", "body"), WRITES)
@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_read_only_roles_get_403_on_writes(api, objs, url, body, role):
    before = DatasetVersion.objects.count()
    r = api(role).post(fmt(url, objs), body, format="json")
    assert r.status_code == 403
    assert DatasetVersion.objects.count() == before
    objs["version"].refresh_from_db()
    assert objs["version"].split is None and objs["version"].target_column == ""


@pytest.mark.parametrize(("url", "body"), WRITES)
def test_outsider_gets_404_on_writes(api, objs, url, body):
    assert api("outsider").post(fmt(url, objs), body, format="json").status_code == 404


def test_create_in_a_foreign_project_is_404_and_viewer_403(api, team, objs):
    body = {"project": team.project.pk, "name": "new", "file": csv_upload(messy_frame(10))}
    assert api("outsider").post("/api/v1/datasets/", body, format="multipart").status_code == 404
    body["file"] = csv_upload(messy_frame(10))
    assert api("viewer").post("/api/v1/datasets/", body, format="multipart").status_code == 403
    assert not Dataset.objects.filter(name="new").exists()
    rb = {"project": team.project.pk, "name": "r2", "steps": []}
    assert api("outsider").post("/api/v1/recipes/", rb, format="json").status_code == 404
    assert api("reviewer").post("/api/v1/recipes/", rb, format="json").status_code == 403
    assert not Recipe.objects.filter(name="r2").exists()


def test_recipe_with_a_foreign_dataset_is_400(api, team, objs):
    foreign = dataset_create(project=team.other_project, name="theirs", created_by=team.outsider)
    r = api("editor").post(
        "/api/v1/recipes/", {"project": team.project.pk, "name": "x", "steps": [], "dataset": foreign.pk}, format="json"
    )
    assert r.status_code == 400 and "dataset" in r.data["errors"]


def test_preview_of_a_foreign_version_is_404(api, team, objs):
    r = api("outsider").post(
        "/api/v1/recipes/preview/", {"dataset_version": objs["version"].pk, "steps": []}, format="json"
    )
    assert r.status_code == 404


def test_connections_owner_only(api, team, objs):
    body = {"project": team.project.pk, "name": "c2", "dsn": "postgresql://u:p@h/x"}
    assert api("editor").post("/api/v1/sql-connections/", body, format="json").status_code == 403
    assert api("outsider").post("/api/v1/sql-connections/", body, format="json").status_code == 404
    assert api("editor").delete(f"/api/v1/sql-connections/{objs['conn'].pk}/").status_code == 403
    assert api("outsider").delete(f"/api/v1/sql-connections/{objs['conn'].pk}/").status_code == 404
    assert SqlConnection.objects.filter(name="c").exists()
    assert api("owner").delete(f"/api/v1/sql-connections/{objs['conn'].pk}/").status_code == 204
    assert not SqlConnection.objects.filter(name="c").exists()


def test_lists_are_scoped(api, team, objs):
    dataset_create(project=team.other_project, name="hidden", created_by=team.outsider)
    names = [d["name"] for d in api("viewer").get("/api/v1/datasets/").data["results"]]
    assert names == ["d"]
    assert api("outsider").get("/api/v1/dataset-versions/").data["count"] == 0


def test_ui_posts_need_edit_data(client, team, objs):
    client.force_login(team.viewer)
    r = client.post(f"/dataset-versions/{objs['version'].pk}/", {"form": "target", "target": "churn"})
    assert r.status_code == 403
    r = client.post(
        f"/projects/{team.project.pk}/datasets/",
        {"form": "connection", "conn-name": "z", "conn-dsn": "postgresql://h/x"},
    )
    assert r.status_code == 403
    assert not SqlConnection.objects.filter(name="z").exists()


def test_no_ordering_by_related_fields(api, team, objs):
    r = api("viewer").get("/api/v1/datasets/?ordering=created_by__password")
    assert r.status_code == 400  # refused, naming what may be used instead
    assert r.json()["errors"]["ordering"][0].endswith(
        "order by name, created_at or updated_at (prefix - for descending, comma-separate several)."
    )
