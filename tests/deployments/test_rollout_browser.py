"""The decision threshold and retire controls of the deployment page, in Chromium: one-click
apply of the validation advice, a typed threshold, the confirm step naming the deployment, and
the page of a retired deployment (no CSP violation, no console error; screenshots 1,280 / 390 px)."""

from __future__ import annotations

import numpy as np
import pytest
from rest_framework.test import APIClient

from deployments.models import Deployment, DeploymentChange
from experiments.ml.diagnostics import threshold_table
from tests.conftest import login, screenshots
from tests.deployments.test_predict_api import GOOD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _watch(page) -> list[str]:
    from tests.browser.test_crawl import WATCH  # collects CSP violations on each page

    page.context.add_init_script(WATCH)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on(
        "response",
        lambda r: (
            problems.append(f"CSP missing on {r.url}")
            if r.request.resource_type == "document"
            and "'nonce-" not in (r.headers.get("content-security-policy") or "")
            else None
        ),
    )
    return problems


def _with_validation_table(deployment) -> float:
    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.3
    scores = np.clip(0.4 * y + rng.random(300) * 0.6, 0, 1)
    table = threshold_table(y, scores)
    run = deployment.model_version.run
    run.diagnostics = {"n_val": 300, "thresholds": table, "positive_class": "yes"}
    run.save()
    return max(table, key=lambda r: (r["f1"], -abs(r["threshold"] - 0.5)))["threshold"]


def test_owner_applies_the_threshold_advice_sets_one_and_retires(page, team, deployment):
    best = _with_validation_table(deployment)
    problems = _watch(page)
    login(page, team.owner.username)
    page.goto(f"/deployments/{deployment.pk}/")
    assert page.text_content("#threshold-current").strip() == "0.5"
    assert page.text_content("#threshold-positive").strip() == "yes"
    page.click("#threshold-table-wrap summary")
    assert page.locator("#threshold-table tbody tr").count() == 19
    assert page.locator("#threshold-table tr[data-current='1']").get_attribute("data-threshold") == "0.5"
    # one click applies the advice (best F1 on validation rows)
    page.click("#threshold-apply-advice")
    page.wait_for_url(f"**/deployments/{deployment.pk}/#threshold")
    assert float(page.text_content("#threshold-current")) == pytest.approx(best)
    assert Deployment.objects.get().active_threshold == pytest.approx(best)
    # a typed threshold, and a bad one reported at its control
    page.fill("#threshold-value", "0.42")
    page.fill("#threshold-reason", "fewer missed approvals")
    page.click("#threshold-set")
    page.wait_for_selector("#threshold-history")
    assert page.text_content("#threshold-current").strip() == "0.42"
    assert page.locator("#threshold-history tbody tr").count() == 2
    assert "fewer missed approvals" in page.text_content("#threshold-history")
    assert page.evaluate("window.__csp") == []
    screenshots(page, "deployment-threshold")
    # retire: the confirm step names the deployment
    page.fill("#retire-reason", "Replaced by the new scoring service.")
    page.fill("#retire-confirm", "not the name")
    page.click("#retire-submit")
    page.wait_for_load_state("load")
    assert "confirm_name" in page.content() and Deployment.objects.get().status == "active"
    page.fill("#retire-reason", "Replaced by the new scoring service.")
    page.fill("#retire-confirm", "loans")
    page.click("#retire-submit")
    page.wait_for_selector("#retired")
    assert page.text_content("#status").strip() == "retired"
    assert "Replaced by the new scoring service." in page.text_content("#retired")
    assert page.locator("#retire-form, #promote-form, #threshold-form, #try-form, #key-form, #batch-form").count() == 0
    assert page.locator("#history tr[data-action='threshold']").first.text_content().count("0.42") == 1
    assert page.locator("#history tr[data-action='retire']").count() == 1
    assert page.evaluate("window.__csp") == []
    screenshots(page, "deployment-retired")
    assert not problems, problems
    assert DeploymentChange.objects.filter(action="threshold").count() == 2
    # the API says 410 from now on
    client = APIClient()
    client.force_authenticate(team.editor)
    r = client.post(f"/api/v1/deployments/{deployment.pk}/predict/", {"instances": [GOOD]}, format="json")
    assert r.status_code == 410


def test_an_editor_sees_no_retire_control(page, team, deployment):
    login(page, team.editor.username)
    page.goto(f"/deployments/{deployment.pk}/")
    assert page.locator("#threshold-form").count() == 1
    assert page.locator("#retire-form").count() == 0
    page.context.clear_cookies()
    login(page, team.viewer.username)
    page.goto(f"/deployments/{deployment.pk}/")
    assert page.locator("#threshold-form, #retire-form").count() == 0
    assert page.locator("#threshold").count() == 1  # the viewer reads the current threshold
