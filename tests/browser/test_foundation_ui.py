"""The foundation's UI in a real browser: login, create a project, problem statement, members."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from projects.models import Membership, Project
from tests.conftest import login
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_rejects_wrong_password_then_accepts(page, team):
    page.goto("/")
    assert "/login/" in page.url
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".errorlist")).to_be_visible()
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Your projects").is_visible()
    assert page.get_by_role("link", name=team.project.name).is_visible()
    assert page.get_by_text("Other team's project").count() == 0


def test_create_project_and_follow_workflow(page, team):
    login(page, "eddie")
    page.click("text=New project")
    page.fill("#id_name", "House prices")
    page.select_option("#id_task_type", "regression")
    # the metric list follows the task type
    options = page.locator("#id_success_metric option").all_text_contents()
    assert "RMSE" in options and "F1" not in options
    page.fill("#id_objective", "Help agents price houses within 25% error")
    page.click("#add-assumption")
    page.locator(".assumption input").last.fill("Prices are stable over the next year")
    page.click("button:has-text('Create project')")
    page.wait_for_url("**/projects/*/")
    project = Project.objects.get(name="House prices")
    assert project.task_type == "regression"
    assert project.assumptions[0]["text"] == "Prices are stable over the next year"
    assert Membership.objects.get(project=project, user=team.editor).role == "owner"
    problem = page.locator("[data-stage=problem]")
    assert problem.get_attribute("data-state") == "in_progress"
    assert (
        "success metric" in page.locator("#next-step").inner_text()
        or "threshold" in page.locator("#next-step").inner_text()
    )


def test_edit_problem_statement_and_decide(page, team):
    login(page, "olivia")
    page.goto(f"/projects/{team.project.pk}/problem/")
    page.fill("#id_success_threshold", "0.8")
    page.fill("#id_baseline_score", "0.65")
    page.click("#add-assumption")
    page.locator(".assumption input").last.fill("Labels are reliable")
    page.locator(".assumption select").last.select_option("violated")
    page.click("button:has-text('Save problem statement')")
    page.wait_for_selector("text=Problem statement saved.")
    team.project.refresh_from_db()
    assert team.project.success_threshold == 0.8
    assert team.project.assumptions[-1] == {"text": "Labels are reliable", "status": "violated", "note": ""}
    page.select_option("#id_decision", "go")
    page.fill("#id_decision_rationale", "Data is available and the gain is worth it")
    page.click("button:has-text('Record decision')")
    page.wait_for_selector("text=Decision recorded.")
    team.project.refresh_from_db()
    assert team.project.decision == "go" and team.project.decided_by == team.owner
    # bad input: a negative threshold is refused with the field named, nothing saved
    page.fill("#id_success_threshold", "-1")
    page.click("button:has-text('Save problem statement')")
    expect(page.locator("#field-success_threshold .errorlist")).to_be_visible()
    team.project.refresh_from_db()
    assert team.project.success_threshold == 0.8


def test_owner_invites_reviewer(page, team):
    UserFactory(username="dr_house")
    login(page, "olivia")
    page.goto(f"/projects/{team.project.pk}/members/")
    page.fill("#id_username", "dr_house")
    page.select_option("#id_role", "reviewer")
    page.click("#add-member button[type=submit]")
    page.wait_for_selector("text=dr_house added as reviewer.")
    assert Membership.objects.get(project=team.project, user__username="dr_house").role == "reviewer"
    assert page.locator("tr[data-username=dr_house]").is_visible()
    page.fill("#id_username", "nobody_here")
    page.click("#add-member button[type=submit]")
    expect(page.get_by_text("No active user named 'nobody_here'.")).to_be_visible()


def test_forbidden_and_hidden_access(page, team):
    login(page, "victor")  # viewer
    page.goto(f"/projects/{team.project.pk}/members/")
    assert page.locator("#add-member").count() == 0
    response = page.request.post(
        f"/projects/{team.project.pk}/members/",
        form={"username": "oscar", "role": "owner"},
        headers={"X-CSRFToken": next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")},
    )
    assert response.status == 403
    assert not Membership.objects.filter(project=team.project, user=team.outsider).exists()
    page.goto(f"/projects/{team.project.pk}/audit/")
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    page.goto(f"/projects/{team.other_project.pk}/")
    assert page.get_by_role("heading", name="Not found").is_visible()
    assert page.get_by_text("Other team's project").count() == 0


def test_tokens_page_creates_and_revokes(page, team):
    login(page, "rita")
    page.goto("/account/tokens/")
    page.fill("#token-name", "notebook")
    page.click("button:has-text('Create token')")
    key = page.locator("#new-token-key").inner_text().strip()
    assert key.startswith("mlp_")
    response = page.request.get("/api/v1/projects/", headers={"Authorization": f"Token {key}"})
    assert response.status == 200
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=revoked")
    response = page.request.get("/api/v1/projects/", headers={"Authorization": f"Token {key}"})
    assert response.status == 401
