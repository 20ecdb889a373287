"""Every role x every action, driven by the one permission table (`projects.roles.PERMISSIONS`).

Each Action has an exemplar request below; the expected answer for a role comes from the table
the permission layer itself reads. A new Action without an exemplar fails the completeness test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from deployments.models import Prediction, ReviewItem, uuid7
from projects.roles import PERMISSIONS, Action, Role
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


@dataclass
class Exemplar:
    method: str
    url: Callable[[Any, Any], str]
    body: Callable[[Any, Any, str], Any] = lambda world, team, role: None


def _fresh_review(world, role: str) -> ReviewItem:
    p = world["prediction"]
    prediction = Prediction.objects.create(
        id=uuid7(),
        project=p.project,
        deployment=p.deployment,
        model_version=p.model_version,
        inputs=p.inputs,
        prediction="reject",
        confidence=0.55,
        probabilities=p.probabilities,
        created_at=timezone.now(),
    )
    return ReviewItem.objects.create(
        project=p.project,
        deployment=p.deployment,
        prediction=prediction,
        reason="low_confidence",
        mode="flag",
        confidence=0.55,
        model_label="reject",
    )


EXEMPLARS: dict[Action, Exemplar] = {
    Action.VIEW: Exemplar("get", lambda w, t: f"/api/v1/projects/{w.project.pk}/"),
    Action.EDIT_PROJECT: Exemplar(
        "patch", lambda w, t: f"/api/v1/projects/{w.project.pk}/", lambda w, t, r: {"objective": f"edited by {r}"}
    ),
    Action.DECIDE: Exemplar(
        "patch",
        lambda w, t: f"/api/v1/projects/{w.project.pk}/",
        lambda w, t, r: {"decision": "go", "decision_rationale": f"decided by {r}"},
    ),
    Action.MANAGE_MEMBERS: Exemplar(
        "patch",
        lambda w, t: f"/api/v1/projects/{w.project.pk}/members/{t.viewer.pk}/",
        lambda w, t, r: {"role": "viewer"},
    ),
    Action.DELETE_PROJECT: Exemplar("delete", lambda w, t: f"/api/v1/projects/{w.project.pk}/"),
    Action.VIEW_AUDIT: Exemplar("get", lambda w, t: f"/api/v1/projects/{w.project.pk}/audit/"),
    Action.EDIT_DATA: Exemplar(
        "post",
        lambda w, t: f"/api/v1/datasets/{w['dataset'].pk}/rows/",
        lambda w, t, r: {"rows": [{"income": 51.0, "debt": 10.0, "region": "north", "approved": "approve"}]},
    ),
    Action.MANAGE_CONNECTIONS: Exemplar(
        "post",
        lambda w, t: "/api/v1/sql-connections/",
        lambda w, t, r: {
            "project": w.project.pk,
            "name": f"wh-{r}",
            "dsn": "postgresql://reader@db.example.com/warehouse",
        },
    ),
    Action.RUN_EXPERIMENTS: Exemplar("post", lambda w, t: f"/api/v1/runs/{w['run'].pk}/diagnose/"),
    Action.MANAGE_DEPLOYMENTS: Exemplar(
        "post", lambda w, t: f"/api/v1/deployments/{w['deployment'].pk}/keys/", lambda w, t, r: {"name": f"key-{r}"}
    ),
    Action.OVERRIDE_GATE: Exemplar(
        "post",
        lambda w, t: "/api/v1/deployments/",
        lambda w, t, r: {
            "project": w.project.pk,
            "name": f"override-{r}",
            "model_version": w["model_version"].pk,
            "justification": "Regulator deadline: shipping with the current model, reviewed weekly.",
        },
    ),
    Action.RETIRE_DEPLOYMENT: Exemplar(
        "post",
        lambda w, t: f"/api/v1/deployments/{w['deployment'].pk}/retire/",
        lambda w, t, r: {"reason": f"replaced by the new scoring service ({r})"},
    ),
    Action.PREDICT: Exemplar(
        "post",
        lambda w, t: f"/api/v1/deployments/{w['deployment'].pk}/predict/",
        lambda w, t, r: {"instances": [{"income": 40.0, "debt": 12.0, "region": "south"}]},
    ),
    Action.REVIEW: Exemplar("post", lambda w, t: "REVIEW"),
    Action.CANCEL_JOB: Exemplar("post", lambda w, t: f"/api/v1/jobs/{w['job'].pk}/cancel/"),
    Action.VIEW_TRACEBACK: Exemplar("get", lambda w, t: f"/api/v1/jobs/{w['job'].pk}/"),
}

# Denied roles first: an allowed destructive call (delete) must come last.
ROLE_ORDER = [Role.VIEWER, Role.REVIEWER, Role.EDITOR, Role.OWNER]


def test_every_action_has_an_exemplar():
    assert set(EXEMPLARS) == set(Action), set(Action) - set(EXEMPLARS)


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_role_matrix(action, world, team):
    exemplar = EXEMPLARS[action]
    if action == Action.VIEW_TRACEBACK:
        world["job"].traceback = "Traceback: boom"
        world["job"].status = "failed"
        world["job"].save()
    for role in ROLE_ORDER:
        client = api_client_for(team.user(role.value))
        allowed = role in PERMISSIONS[action]
        url = exemplar.url(world, team)
        if action == Action.REVIEW:
            url = f"/api/v1/reviews/{_fresh_review(world, role.value).pk}/approve/"
        body = exemplar.body(world, team, role.value)
        response = getattr(client, exemplar.method)(url, body, format="json")
        if action == Action.VIEW_TRACEBACK:
            assert response.status_code == 200
            shown = response.json()["traceback"] is not None
            assert shown == allowed, f"{role.value}: traceback shown={shown}"
            continue
        if allowed:
            assert response.status_code < 400 or (response.status_code == 409 and action == Action.CANCEL_JOB), (
                f"{action.value} as {role.value}: expected success, got {response.status_code} {response.content[:300]}"
            )
        else:
            assert response.status_code == 403, (
                f"{action.value} as {role.value}: expected 403, got {response.status_code} {response.content[:300]}"
            )


def test_reviewer_decides_reviews_but_cannot_edit_data(world, team):
    client = api_client_for(team.reviewer)
    item = _fresh_review(world, "reviewer")
    assert client.post(f"/api/v1/reviews/{item.pk}/override/", {"label": "approve"}, format="json").status_code == 200
    assert (
        client.post(
            f"/api/v1/dataset-versions/{world['dataset_version'].pk}/split/",
            {"strategy": "random", "test_size": 0.2, "val_size": 0.2, "seed": 1},
            format="json",
        ).status_code
        == 403
    )
    assert uuid.UUID(str(item.prediction_id))
