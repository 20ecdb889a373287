"""Every path and method of the OpenAPI schema, called by a member of *another* project with
the ids of this project's objects: 404, and nothing changes anywhere.

The paths come from `/api/v1/schema/`, so an endpoint is covered the day it is added; a path
whose resource this file cannot map to an object fails the test until it is mapped.
"""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.core import serializers

from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db

# First path segment after /api/v1/ -> the world object whose id fills {id}/{pk}.
RESOURCE_OBJECTS = {
    "projects": "project",
    "datasets": "dataset",
    "dataset-versions": "dataset_version",
    "recipes": "recipe",
    "sql-connections": "sql_connection",
    "experiments": "experiment",
    "runs": "run",
    "models": "model_version",
    "model-versions": "model_version",
    "deployments": "deployment",
    "api-keys": "api_key",
    "predictions": "prediction",
    "reviews": "review",
    "alerts": "alert",
    "snapshots": "snapshot",
    "jobs": "job",
}
# Not project-owned: the login, the schema and docs, the asking user's own tokens, catalogues.
PUBLIC_OR_OWN = {"auth", "schema", "docs", "tokens", "algorithms", "recipe-steps"}
WATCHED_APPS = ("projects", "datasets", "experiments", "deployments", "jobs")


def _fingerprint() -> str:
    models = [m for app in WATCHED_APPS for m in apps.get_app_config(app).get_models()]
    return serializers.serialize("json", [obj for m in models for obj in m.objects.order_by("pk")])


def _schema(client) -> dict:
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def _fill(path: str, world, team) -> str | None:
    resource = path.removeprefix("/api/v1/").split("/")[0]
    if resource in PUBLIC_OR_OWN:
        return None
    if resource not in RESOURCE_OBJECTS:
        raise AssertionError(f"{path}: map resource {resource!r} to an object in RESOURCE_OBJECTS")
    obj = world.project if RESOURCE_OBJECTS[resource] == "project" else world[RESOURCE_OBJECTS[resource]]
    filled = re.sub(r"\{(id|pk)\}", str(obj.pk), path, count=1)
    filled = re.sub(r"\{user_id\}", str(team.owner.pk), filled)
    filled = re.sub(r"\{[a-z_]+\}", "1", filled)
    return filled


def test_every_endpoint_hides_other_projects(world, team):
    outsider = api_client_for(team.outsider)
    schema = _schema(api_client_for(team.owner))
    before = _fingerprint()
    checked = []
    for path, operations in schema["paths"].items():
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            has_id = "{" in path
            if not has_id:
                continue
            url = _fill(path, world, team)
            if url is None:
                continue
            body = {"project": team.project.pk, "label": "approve", "role": "owner", "username": "oscar"}
            response = getattr(outsider, method)(url, body, format="json")
            assert response.status_code == 404, (
                f"{method.upper()} {url}: {response.status_code} {response.content[:200]}"
            )
            assert str(world.project.name) not in response.content.decode(errors="ignore")
            checked.append(f"{method.upper()} {path}")
    assert _fingerprint() == before, "a request from another project's member changed data"
    assert len(checked) >= 8, checked


def test_lists_and_creates_never_reach_other_projects(world, team):
    outsider = api_client_for(team.outsider)
    schema = _schema(api_client_for(team.owner))
    before = _fingerprint()
    for path, operations in schema["paths"].items():
        if "{" in path:
            continue
        resource = path.removeprefix("/api/v1/").split("/")[0]
        if resource in PUBLIC_OR_OWN:
            continue
        if "get" in operations:
            response = outsider.get(path, {"project": team.project.pk})
            assert response.status_code in (200, 400, 404), f"GET {path}: {response.status_code}"
            if response.status_code == 200:
                text = response.content.decode()
                assert world.project.name not in text, f"GET {path} leaked the other project"
        if "post" in operations:
            body = {
                "project": team.project.pk,
                "name": "intruder",
                "dataset_version": world["dataset_version"].pk,
                "model_version": world["model_version"].pk,
                "target": "approved",
                "task_type": "classification",
                "source_url": "https://example.com/data.csv",
                "deployment": world["deployment"].pk,
            }
            response = outsider.post(path, body, format="json")
            if resource == "projects":
                # creating one's own project is allowed; the foreign ids are ignored
                assert response.status_code == 201
                continue
            assert response.status_code in (400, 404), f"POST {path}: {response.status_code} {response.content[:200]}"
    after = _fingerprint()
    # only the outsider's own new project (and its membership/audit rows) may appear
    assert after.count(f'"project": {team.project.pk}') == before.count(f'"project": {team.project.pk}')
