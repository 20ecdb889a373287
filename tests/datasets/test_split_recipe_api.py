"""Splits with a locked test set, recipes over the API, previews and paged rows."""

from __future__ import annotations

import pytest

from datasets.models import DatasetVersion, Recipe
from datasets.selectors import locked_test_frame, split_frames
from datasets.services import dataset_create, version_create_from_frame
from jobs.models import Job
from tests.datasets.helpers import messy_frame, wait_version

pytestmark = pytest.mark.worker


@pytest.fixture
def ready(team, worker):
    ds = dataset_create(project=team.project, name="customers", created_by=team.owner)
    version = version_create_from_frame(dataset=ds, frame=messy_frame(), created_by=team.owner)
    version = wait_version(version.pk)
    DatasetVersion.objects.filter(pk=version.pk).update(target_column="churn")
    version.refresh_from_db()
    return version


def split(api, version, body, role="editor") -> dict:
    """POST a split (a job: 202 + Location), wait on the job, return the version as it is then."""
    r = api(role).post(f"/api/v1/dataset-versions/{version.pk}/split/", body, format="json")
    assert r.status_code == 202, r.data
    assert r["Location"] == f"/api/v1/jobs/{r.data['job_id']}/" and r.data["recomputing"] is True
    job = api("viewer").get(r["Location"], {"wait": 30}).json()
    assert job["status"] == "succeeded", job
    return api("viewer").get(f"/api/v1/dataset-versions/{version.pk}/").json()


def test_stratified_split_locks_test_and_reports_duplicates_across_parts(api, ready):
    data = split(
        api, ready, {"strategy": "stratified", "test_size": 0.2, "val_size": 0.2, "seed": 7, "column": "churn"}
    )
    assert data["test_locked"] is True and data["recomputing"] is False
    assert data["split"]["seed"] == 7 and sum(data["split"]["counts"].values()) == 312
    ready.refresh_from_db()
    parts = split_frames(ready)
    test = locked_test_frame(ready, purpose="final_evaluation")
    assert len(parts.train) + len(parts.val) + len(test) == 312
    share = lambda f: (f["churn"] == "yes").mean()  # noqa: E731
    assert abs(share(parts.train) - share(test)) < 0.05
    with pytest.raises(PermissionError):
        locked_test_frame(ready, purpose="peek")
    # The messy frame has 12 duplicated rows: some land on both sides of the split.
    kinds = [w["kind"] for w in data["warnings"]]
    assert "split_duplicate_rows" in kinds or len(test.merge(parts.train).index) == 0

    rows = api("viewer").get(f"/api/v1/dataset-versions/{ready.pk}/rows/?page_size=500").data
    assert rows["test_rows_hidden"] is True
    assert rows["count"] == len(parts.train) + len(parts.val)
    assert set(rows["split"]) <= {"train", "validation"}


def test_group_and_time_splits_keep_groups_and_time_apart(api, ready):
    split(api, ready, {"strategy": "group", "column": "city", "test_size": 0.25, "val_size": 0.2})
    ready.refresh_from_db()
    parts, test = split_frames(ready), locked_test_frame(ready, purpose="final_evaluation")
    assert not set(test["city"].dropna()) & set(parts.train["city"].dropna())
    split(api, ready, {"strategy": "time", "column": "signup", "test_size": 0.2, "val_size": 0.1})
    ready.refresh_from_db()
    parts, test = split_frames(ready), locked_test_frame(ready, purpose="final_evaluation")
    assert parts.train["signup"].max() <= test["signup"].min()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "magic"}, "strategy"),
        ({"strategy": "group"}, "column"),
        ({"strategy": "stratified", "column": "nope"}, "column"),
        ({"strategy": "random", "test_size": 1.5}, "test_size"),
        ({"strategy": "random", "test_size": 0.5, "val_size": 0.45}, "val_size"),
    ],
)
def test_bad_split_is_400_and_changes_nothing(api, ready, body, field):
    r = api("editor").post(f"/api/v1/dataset-versions/{ready.pk}/split/", body, format="json")
    assert r.status_code == 400, r.data
    assert field in r.data["errors"]
    ready.refresh_from_db()
    assert ready.split is None and not ready.test_locked


def test_stratified_split_on_a_single_class_target_is_400(api, team, worker):
    frame = messy_frame(60)
    frame["label"] = "only"
    ds = dataset_create(project=team.project, name="one", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=frame, created_by=team.owner).pk)
    r = api("editor").post(f"/api/v1/dataset-versions/{v.pk}/target/", {"target": "label"}, format="json")
    assert r.status_code == 202
    from tests.datasets.helpers import wait_profile_change

    v = wait_profile_change(v.pk, lambda x: any(w["kind"] == "single_class" for w in x.warnings))
    assert any(w["kind"] == "single_class" and w["severity"] == "high" for w in v.warnings)
    r = api("editor").post(
        f"/api/v1/dataset-versions/{v.pk}/split/", {"strategy": "stratified", "column": "label"}, format="json"
    )
    assert r.status_code == 400 and "single class" in r.data["errors"]["column"][0]
    v.refresh_from_db()
    assert v.split is None
    assert not Job.objects.filter(kind="dataset.split").exists()  # refused before anything was queued


EVERY_STEP = [
    {"op": "ratio", "numerator": "income", "denominator": "age", "name": "income_per_age"},
    {"op": "age", "column": "signup", "name": "tenure", "reference": "2025-01-01"},
    {"op": "uppercase_ratio", "column": "city", "name": "city_upper"},
    {"op": "drop_columns", "columns": ["customer_id"]},
    {"op": "impute", "columns": ["age"], "strategy": "median"},
    {"op": "impute", "columns": ["city"], "strategy": "constant", "value": "unknown"},
    {"op": "drop_duplicates"},
    {"op": "remove_outliers", "columns": ["balance"], "method": "iqr", "threshold": 3},
    {"op": "encode", "columns": ["city"], "method": "onehot"},
    {"op": "scale", "columns": ["balance"], "method": "robust"},
    {"op": "scale", "columns": ["income"], "method": "minmax"},
    {"op": "date_parts", "columns": ["signup"], "parts": ["year", "month", "dayofweek"]},
    {"op": "pca", "n_components": 6},
    {"op": "select_k_best", "k": 4},
]


def test_recipe_crud_versions_and_preview(api, team, ready):
    body = {"project": team.project.pk, "name": "clean", "steps": EVERY_STEP, "dataset": ready.dataset_id}
    r1 = api("editor").post("/api/v1/recipes/", body, format="json")
    assert r1.status_code == 201, r1.data
    r2 = api("editor").post("/api/v1/recipes/", {**body, "steps": EVERY_STEP[:3]}, format="json")
    assert (r1.data["version"], r2.data["version"]) == (1, 2)
    assert Recipe.objects.get(pk=r1.data["id"]).steps == EVERY_STEP  # old versions stay
    listing = api("viewer").get(f"/api/v1/recipes/?project={team.project.pk}&name=clean").data
    assert listing["count"] == 2

    p = api("viewer").post(
        "/api/v1/recipes/preview/", {"dataset_version": ready.pk, "steps": EVERY_STEP}, format="json"
    )
    assert p.status_code == 200, p.data
    assert len(p.data["after"]["columns"]) == 4
    assert p.data["rows_after_row_filters"] < p.data["rows_in"]  # duplicates and outliers removed
    assert "customer_id" not in p.data["feature_columns"]
    assert "churn" not in p.data["before"]["columns"]


@pytest.mark.parametrize(
    ("steps", "field", "needle"),
    [
        ([{"op": "drop_columns", "columns": ["ghost"]}], "steps[0].columns", "ghost"),
        ([{"op": "impute", "columns": ["age"], "strategy": "mode"}], "steps[0].strategy", ""),
        ([{"op": "teleport"}], "steps[0].op", "teleport"),
        ([{"op": "scale", "columns": ["city"]}], "steps[0].columns", "city"),
        ([{"op": "ratio", "numerator": "income", "denominator": "ghost"}], "steps[0].denominator", "ghost"),
        ([{"op": "pca", "n_components": 0}], "steps[0].n_components", ""),
        ([{"op": "encode", "columns": ["churn"]}], "steps[0].columns", "target"),
        ([{"op": "date_parts", "columns": ["signup"], "format": "%d/%m/%Y"}], "steps[0].format", "'signup'"),
        ([{"op": "date_parts", "columns": ["signup"], "format": "daily"}], "steps[0].format", "strftime"),
        ("not a list", "steps", ""),
    ],
)
def test_bad_recipe_is_400_naming_the_step(api, team, ready, steps, field, needle):
    r = api("editor").post(
        "/api/v1/recipes/",
        {"project": team.project.pk, "name": "bad", "steps": steps, "dataset": ready.dataset_id},
        format="json",
    )
    assert r.status_code == 400, r.data
    assert field in r.data["errors"], r.data
    assert needle in r.data["detail"]
    assert not Recipe.objects.filter(name="bad").exists()


def test_rows_are_paged(api, ready):
    r = api("viewer").get(f"/api/v1/dataset-versions/{ready.pk}/rows/?page=2&page_size=100").data
    assert r["count"] == 312 and len(r["rows"]) == 100 and r["split"] is None
    assert r["columns"][0] == "customer_id" and r["rows"][0][0] == 1100
    bad = api("viewer").get(f"/api/v1/dataset-versions/{ready.pk}/rows/?page=x")
    assert bad.status_code == 400


def test_cleaning_makes_a_new_version_without_duplicates(api, team, ready):
    steps = [{"op": "drop_duplicates"}, {"op": "drop_columns", "columns": ["customer_id"]}, {"op": "scale"}]
    r = api("editor").post(f"/api/v1/dataset-versions/{ready.pk}/clean/", {"steps": steps}, format="json")
    assert r.status_code == 202, r.data
    new = wait_version(r.data["id"])
    assert new.status == "ready", new.error
    assert new.row_count == 300 and new.parent_id == ready.pk and new.source == "recipe"
    assert "customer_id" not in [c["name"] for c in new.schema]
    assert new.source_detail["steps"] == steps[:2] and new.target_column == "churn"
    assert not any(w["kind"] == "duplicate_rows" for w in new.warnings)
    ready.refresh_from_db()
    assert ready.row_count == 312  # the source version is untouched
    bad = api("editor").post(f"/api/v1/dataset-versions/{ready.pk}/clean/", {"steps": [{"op": "scale"}]}, format="json")
    assert bad.status_code == 400 and "steps" in bad.data["errors"]
    ghost = [{"op": "drop_columns", "columns": ["ghost"]}]
    bad = api("editor").post(f"/api/v1/dataset-versions/{ready.pk}/clean/", {"steps": ghost}, format="json")
    assert bad.status_code == 400 and "ghost" in bad.data["detail"]
    assert (
        api("viewer").post(f"/api/v1/dataset-versions/{ready.pk}/clean/", {"steps": steps}, format="json").status_code
        == 403
    )
    assert (
        api("outsider").post(f"/api/v1/dataset-versions/{ready.pk}/clean/", {"steps": steps}, format="json").status_code
        == 404
    )
    assert DatasetVersion.objects.filter(dataset=ready.dataset).count() == 2
