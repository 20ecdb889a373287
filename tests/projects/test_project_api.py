from __future__ import annotations

import pytest

from projects.models import AuditEvent, Membership, Project

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/"


def test_create_project_makes_creator_owner(api, team):
    body = {
        "name": "Loan approvals",
        "task_type": "classification",
        "objective": "Approve good loans faster",
        "usage": "Officers see a recommendation",
        "current_solution": "Manual review, F1 0.62",
        "success_metric": "f1",
        "success_threshold": 0.7,
        "baseline_score": 0.62,
        "assumptions": [{"text": "Applicants' income is reported honestly"}],
    }
    response = api("editor").post(URL, body, format="json")
    assert response.status_code == 201, response.data
    project = Project.objects.get(pk=response.data["id"])
    assert Membership.objects.get(project=project, user=team.editor).role == "owner"
    assert response.data["my_role"] == "owner"
    assert project.assumptions == [
        {"text": "Applicants' income is reported honestly", "status": "unchecked", "note": ""}
    ]
    assert AuditEvent.objects.filter(project=project, action="project.created").exists()


def test_create_defaults_metric_for_task_type(api, team):
    response = api("owner").post(URL, {"name": "Prices", "task_type": "regression"}, format="json")
    assert response.status_code == 201
    assert response.data["success_metric"] == "rmse"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task_type": "classification"}, "name"),
        ({"name": "x"}, "task_type"),
        ({"name": "x", "task_type": "clustering"}, "task_type"),
        ({"name": "x", "task_type": "classification", "success_metric": "rmse"}, "success_metric"),
        ({"name": "x", "task_type": "regression", "success_metric": "nope"}, "success_metric"),
        ({"name": "x", "task_type": "classification", "success_threshold": -0.1}, "success_threshold"),
        ({"name": "x", "task_type": "classification", "success_threshold": "high"}, "success_threshold"),
        ({"name": "x", "task_type": "classification", "success_threshold": 1.5}, "success_threshold"),
        ({"name": "x", "task_type": "classification", "assumptions": [{"status": "holds"}]}, "assumptions"),
        ({"name": "x", "task_type": "classification", "decision": "maybe"}, "decision"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(api, team, body, field):
    before = Project.objects.count()
    response = api("owner").post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.data["errors"], response.data
    assert response.data["detail"]
    assert Project.objects.count() == before


def test_list_shows_only_my_projects(api, team):
    response = api("viewer").get(URL)
    assert response.status_code == 200
    assert [p["id"] for p in response.data["results"]] == [team.project.pk]


def test_outsider_gets_404_on_project(api, team):
    client = api("outsider")
    assert client.get(f"{URL}{team.project.pk}/").status_code == 404
    assert client.patch(f"{URL}{team.project.pk}/", {"name": "mine"}, format="json").status_code == 404
    assert client.delete(f"{URL}{team.project.pk}/").status_code == 404
    assert client.get(f"{URL}{team.project.pk}/members/").status_code == 404
    assert client.get(f"{URL}{team.project.pk}/audit/").status_code == 404
    team.project.refresh_from_db()
    assert team.project.name != "mine"


def test_unauthenticated_gets_401(team):
    from rest_framework.test import APIClient

    assert APIClient().get(URL).status_code in (401, 403)


def test_editor_updates_problem_statement(api, team):
    response = api("editor").patch(
        f"{URL}{team.project.pk}/", {"objective": "New objective", "success_threshold": 0.75}, format="json"
    )
    assert response.status_code == 200, response.data
    team.project.refresh_from_db()
    assert team.project.objective == "New objective"
    assert team.project.success_threshold == 0.75
    event = AuditEvent.objects.get(project=team.project, action="project.updated")
    assert event.data["changed"]["success_threshold"] == {"from": 0.7, "to": 0.75}


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_problem_statement_requires_edit_role(api, team, role):
    response = api(role).patch(f"{URL}{team.project.pk}/", {"objective": "x"}, format="json")
    assert response.status_code == 403
    team.project.refresh_from_db()
    assert team.project.objective != "x"


def test_update_rejects_metric_of_other_task_type(api, team):
    response = api("owner").patch(f"{URL}{team.project.pk}/", {"success_metric": "r2"}, format="json")
    assert response.status_code == 400
    assert "success_metric" in response.data["errors"]


def test_switching_task_type_resets_metric(api, team):
    response = api("owner").patch(
        f"{URL}{team.project.pk}/",
        {"task_type": "regression", "success_threshold": 5, "baseline_score": 7},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["success_metric"] == "rmse"


def test_decision_is_owner_only_and_needs_rationale(api, team):
    url = f"{URL}{team.project.pk}/"
    assert api("editor").patch(url, {"decision": "go", "decision_rationale": "ok"}, format="json").status_code == 403
    response = api("owner").patch(url, {"decision": "go"}, format="json")
    assert response.status_code == 400
    assert "decision_rationale" in response.data["errors"]
    response = api("owner").patch(url, {"decision": "go", "decision_rationale": "Data is there"}, format="json")
    assert response.status_code == 200
    assert response.data["decision"] == "go"
    assert response.data["decided_by"] == "olivia"
    assert response.data["decided_at"]


def test_delete_is_owner_only(api, team):
    url = f"{URL}{team.project.pk}/"
    assert api("editor").delete(url).status_code == 403
    assert Project.objects.filter(pk=team.project.pk).exists()
    assert api("owner").delete(url).status_code == 204
    assert not Project.objects.filter(pk=team.project.pk).exists()


def test_assumption_can_be_marked_violated(api, team):
    url = f"{URL}{team.project.pk}/"
    api("owner").patch(url, {"assumptions": [{"text": "Stable prices"}]}, format="json")
    response = api("owner").patch(
        url, {"assumptions": [{"text": "Stable prices", "status": "violated", "note": "inflation"}]}, format="json"
    )
    assert response.status_code == 200
    assert response.data["assumptions"][0]["status"] == "violated"
    workflow = api("viewer").get(f"{url}workflow/").data
    assert workflow[0]["key"] == "problem" and workflow[0]["state"] == "blocked"


def test_ordering_or_filtering_by_relation_is_refused(api, team):
    response = api("owner").get(URL, {"ordering": "created_by__password"})
    assert response.status_code == 400
    assert response.data["errors"]["ordering"][0].endswith("order by created_at, name or updated_at "
                                                            "(prefix - for descending, comma-separate several).")  # fmt: skip
    response = api("owner").get(URL, {"created_by__password__startswith": "pbkdf2"})
    assert response.status_code == 400
    assert "filters: task_type or decision" in response.data["detail"]
    assert "pbkdf2" not in str(response.data)
