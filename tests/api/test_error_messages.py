"""A message that names a bad value lists the valid ones."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"task_type": "clustering"}, "task_type", "'clustering' is not valid: use classification or regression."),
        ({"decision": "maybe"}, "decision", "'maybe' is not valid: use pending, go or no_go."),
        (
            {"success_metric": "speed"},
            "success_metric",
            "Unknown metric 'speed'; choose one of accuracy, balanced_accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss.",
        ),
    ],
)
def test_project_fields_list_their_valid_values(api, body, field, message):
    r = api("owner").post("/api/v1/projects/", {"name": "P", "task_type": "classification", **body}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["errors"][field] == [message]


def test_member_role_lists_the_roles(api, team):
    r = api("owner").post(
        f"/api/v1/projects/{team.project.pk}/members/", {"username": "oscar", "role": "boss"}, format="json"
    )
    assert r.status_code == 400
    assert r.json()["errors"]["role"] == ["'boss' is not valid: use owner, editor, reviewer or viewer."]
