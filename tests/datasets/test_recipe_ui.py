"""The recipe editor's two endpoints: the automatic recipe of a version and a preview of steps."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from datasets.models import DatasetVersion
from datasets.profiling import profile_frame
from datasets.services import dataset_create, version_create_from_frame, version_split
from tests.browser.populated import messy_loans
from tests.factories import PASSWORD


@pytest.fixture
def messy_version(team):
    frame = messy_loans(200)
    dataset = dataset_create(project=team.project, name="loans", created_by=team.owner)
    version = version_create_from_frame(dataset=dataset, frame=frame, created_by=team.owner, enqueue_profile=False)
    profile = profile_frame(frame, target="approved", task="classification")
    DatasetVersion.objects.filter(pk=version.pk).update(
        target_column="approved",
        profile={k: v for k, v in profile.items() if k != "warnings"},
        warnings=profile["warnings"],
    )
    version.refresh_from_db()
    return version_split(version=version, actor=team.owner, strategy="stratified", column="approved")


def _client(user) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def _preview(client: Client, version, body) -> object:
    return client.post(
        f"/dataset-versions/{version.pk}/recipe/preview/",
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
    )


def test_automatic_recipe_explains_each_step_and_cleans_the_messy_column(team, messy_version):
    r = _client(team.editor).get(f"/dataset-versions/{messy_version.pk}/recipe/auto/?target=approved")
    assert r.status_code == 200
    steps = r.json()["steps"]
    ops = [s["step"]["op"] for s in steps]
    assert ops[0] == "drop_columns" and steps[0]["step"]["columns"] == ["application_id"]
    clean = next(s for s in steps if s["step"]["op"] == "clean_categories")
    assert clean["step"]["columns"] == ["region"] and "several ways" in clean["why"]
    assert all(s["why"] for s in steps)
    assert {c["name"] for c in r.json()["columns"]} >= {"income", "region", "approved"}


def test_preview_shows_before_after_and_the_mapping(team, messy_version):
    steps = [{"op": "clean_categories", "columns": ["region"]}, {"op": "drop_columns", "columns": ["application_id"]}]
    r = _preview(_client(team.owner), messy_version, {"steps": steps, "target": "approved"})
    assert r.status_code == 200, r.content
    body = r.json()
    mapping = {row["to"]: row for row in body["category_mappings"]["region"]}
    assert "north" in mapping["North"]["from"] and "Soutth" in mapping["South"]["similar"]
    assert "application_id" not in body["after"]["columns"] and body["before"]["rows"]


def test_a_bad_step_is_a_400_naming_the_step_and_field(team, messy_version):
    client = _client(team.editor)
    r = _preview(
        client, messy_version, {"steps": [{"op": "scale"}, {"op": "impute", "columns": ["nope"]}], "target": ""}
    )
    assert r.status_code == 400
    assert list(r.json()["errors"]) == ["steps[1].columns"] and "nope" in r.json()["detail"]
    r = _preview(client, messy_version, {"steps": [], "target": "not-a-column"})
    assert r.status_code == 400 and list(r.json()["errors"]) == ["target"]
    r = client.get(f"/dataset-versions/{messy_version.pk}/recipe/auto/?target=not-a-column")
    assert r.status_code == 400 and list(r.json()["errors"]) == ["target"]


def test_hostile_bodies_are_400_not_500(team, messy_version):
    client = _client(team.editor)
    assert _preview(client, messy_version, "[" * 50_000).status_code == 400
    assert _preview(client, messy_version, "{not json").status_code == 400
    assert _preview(client, messy_version, {"steps": {"op": "scale"}}).status_code == 400
    assert _preview(client, messy_version, {"steps": [], "target": ["x"]}).status_code == 400


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_roles_without_data_editing_get_403(team, messy_version, role):
    client = _client(team.user(role))
    assert client.get(f"/dataset-versions/{messy_version.pk}/recipe/auto/").status_code == 403
    assert _preview(client, messy_version, {"steps": []}).status_code == 403


def test_outsiders_get_404(team, messy_version):
    client = _client(team.outsider)
    assert client.get(f"/dataset-versions/{messy_version.pk}/recipe/auto/").status_code == 404
    assert _preview(client, messy_version, {"steps": []}).status_code == 404


def test_saving_a_bad_recipe_on_the_version_page_keeps_the_steps_and_names_the_step(team, messy_version):
    from datasets.models import Recipe

    steps = [{"op": "drop_columns", "columns": ["application_id"]}, {"op": "scale", "columns": ["region"]}]
    r = _client(team.editor).post(
        f"/dataset-versions/{messy_version.pk}/",
        {"form": "recipe", "name": "mine", "steps": json.dumps(steps)},
    )
    assert r.status_code == 200
    config = json.loads(r.context["recipe_ui"] and json.dumps(r.context["recipe_ui"]))
    assert config["error"]["field"] == "steps[1].columns" and config["initial"] == steps
    assert not Recipe.objects.filter(name="mine").exists()
