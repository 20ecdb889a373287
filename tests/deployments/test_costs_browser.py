"""Decisions by cost in Chromium: the deployment's cost card (advice, curve, one-click apply) and
the run page's cost card, no CSP violation or console error; screenshots at 1,280 and 390 px."""

from __future__ import annotations

import pytest

from deployments.models import Deployment
from tests.conftest import login, screenshots
from tests.deployments.test_costs import set_costs, with_validation
from tests.deployments.test_rollout_browser import _watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def card_shots(page, selector: str, name: str) -> None:
    """The card alone at both widths, next to the full-page screenshots (easier to look at)."""
    out = screenshots(page, name)[0].parent
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator(selector).screenshot(path=str(out / f"{name}-card-{width}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_owner_reads_the_cost_advice_and_applies_it(page, team, deployment):
    set_costs(team.project)
    run = with_validation(deployment)
    problems = _watch(page)
    login(page, team.owner.username)
    page.goto(f"/deployments/{deployment.pk}/#costs")
    advice = page.text_content("#cost-advice")
    assert "Cost-optimal threshold" in advice and "review band" in advice and "now" in advice
    assert "of decisions to reviewers" in page.text_content("#cost-review-share")  # the load, before the click
    assert page.locator("#cost-chart polyline").count() == 2
    assert page.locator("#cost-chart [data-marker='best']").count() == 1
    assert "needs 30" in page.text_content("#cost-live")
    page.locator("#costs").scroll_into_view_if_needed()
    card_shots(page, "#costs", "costs-deployment")
    page.click("#cost-apply")
    page.wait_for_selector(".messages, .message, [role=status]", timeout=10000)
    d = Deployment.objects.get(pk=deployment.pk)
    assert d.decision_threshold is not None and "class_thresholds" in d.review_policy
    assert page.locator("#cost-apply").count() == 0  # applied: no advice left
    assert "already as cheap" in page.text_content("#cost-no-advice")
    page.goto(f"/runs/{run.pk}/")
    compare = page.text_content("#cost-compare")
    assert "Cost-optimal, review [" in compare and "Best F1" in compare
    assert page.locator("#cost-chart polyline").count() == 2
    page.locator("#cost-card").scroll_into_view_if_needed()
    card_shots(page, "#cost-card", "costs-run")
    assert not problems, problems


def test_owner_sets_the_cost_matrix_on_the_problem_statement(page, team):
    problems = _watch(page)
    login(page, team.owner.username)
    page.goto(f"/projects/{team.project.pk}/problem/")
    page.fill("#id_cost_unit", "EUR")
    page.fill("#id_cost_false_positive", "500")
    page.click("button:has-text('Save problem statement')")
    # one cost missing: refused under its own field, nothing saved
    assert "false negative" in page.text_content("#field-cost_false_negative .errorlist")
    team.project.refresh_from_db()
    assert team.project.cost_matrix is None
    page.fill("#id_cost_false_negative", "120")
    page.fill("#id_cost_review", "15")
    card_shots(page, "#field-cost_unit", "costs-problem-unit")
    screenshots(page, "costs-problem")
    page.click("button:has-text('Save problem statement')")
    page.wait_for_selector("text=Problem statement saved.")
    team.project.refresh_from_db()
    assert team.project.cost_matrix == {
        "unit": "EUR",
        "false_positive": 500.0,
        "false_negative": 120.0,
        "review": 15.0,
        "true_positive": 0.0,
        "true_negative": 0.0,
    }
    assert not problems, problems
