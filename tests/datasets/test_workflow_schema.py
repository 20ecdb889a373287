"""The data stage of the workflow picture, and the API schema including our endpoints."""

from __future__ import annotations

import pytest

from datasets.models import DatasetVersion
from datasets.services import dataset_create, version_create_from_frame, version_split
from projects.workflow import workflow_for
from tests.datasets.helpers import messy_frame

pytestmark = pytest.mark.django_db


def data_stage(project):
    return next(s for s in workflow_for(project=project) if s.key == "data")


def test_data_stage_moves_from_todo_to_done(team):
    assert data_stage(team.project).state == "todo"
    ds = dataset_create(project=team.project, name="d", created_by=team.owner)
    v = version_create_from_frame(dataset=ds, frame=messy_frame(40), created_by=team.owner, enqueue_profile=False)
    stage = data_stage(team.project)
    assert stage.state == "in_progress" and "split" in stage.next_step
    version_split(version=v, actor=team.owner, strategy="random", seed=1)
    stage = data_stage(team.project)
    assert stage.state == "done" and "locked test" in stage.detail
    assert stage.url == f"/dataset-versions/{v.pk}/"


def test_failed_import_blocks_the_stage(team):
    ds = dataset_create(project=team.project, name="d", created_by=team.owner)
    DatasetVersion.objects.create(
        project=team.project, dataset=ds, number=1, source="upload", status="failed", error="x"
    )
    assert data_stage(team.project).state == "blocked"


def test_schema_lists_the_dataset_endpoints(api):
    r = api("viewer").get("/api/v1/schema/?format=json")
    assert r.status_code == 200
    paths = r.json()["paths"] if hasattr(r, "json") else {}
    for path in (
        "/api/v1/datasets/",
        "/api/v1/datasets/{id}/rows/",
        "/api/v1/dataset-versions/{id}/split/",
        "/api/v1/recipes/preview/",
        "/api/v1/sql-connections/",
    ):
        assert path in paths, path
