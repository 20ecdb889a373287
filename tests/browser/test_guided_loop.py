"""The done-means test of the guided loop: from a messy CSV to a served prediction and a decided
review item, in Chromium only (no API call, no shell, no service call from the test): new
project, upload, profile, target, split, experiment, final evaluation of the pre-selected best
candidate, register, go / no-go, deploy, "Try it", and a reviewer's decision.

At each step it asserts what a person would check; one bad submission per form that has its
own answer (the decision's rationale, the deploy form's review threshold) shows the error next
to its control and changes nothing. Screenshots of the new pages at 1,280 and 390 px go to
var/screenshots/guided-*.png.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from deployments.models import Deployment, ModelVersion, ReviewItem
from projects.models import Project
from tests.browser.populated import messy_loans
from tests.conftest import login, screenshots

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.sourceFile));"""


def _watch(page) -> list[str]:
    """Console errors, uncaught exceptions and CSP violations seen by this page (checked at the end)."""
    errors: list[str] = []
    page.context.add_init_script(WATCH)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 400" not in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _until(page, selector: str, timeout: float = 60) -> None:
    """Wait for `selector`, reloading the page meanwhile (jobs end while the page is open)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            page.wait_for_selector(selector, timeout=3000)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            try:
                page.reload()
            except Exception:  # noqa: S110 - the page's own script reloaded it first
                pass


def _field_error(page, control: str) -> str:
    """The error text under a control (inside its .field), with the control marked invalid."""
    field = page.locator(f".field:has({control})")
    assert page.get_attribute(control, "aria-invalid") == "true"
    return field.locator(".errorlist").inner_text()


def _create_project(page) -> Project:
    page.click("text=New project")
    page.fill("#id_name", "Loan approvals")
    page.select_option("#id_task_type", "classification")
    page.fill("#id_objective", "Approve loan applications faster, with people reviewing the unsure ones.")
    page.select_option("#id_success_metric", "f1")
    page.fill("#id_success_threshold", "0.55")
    page.fill("#id_baseline_score", "0.5")
    page.click("button:has-text('Create project')")
    page.wait_for_url(re.compile(r"/projects/\d+/$"))
    return Project.objects.get(name="Loan approvals")


def _upload_profile_split(page, project: Project, csv_path) -> None:
    page.goto(f"/projects/{project.pk}/datasets/")
    page.set_input_files("#upload-file", str(csv_path))
    assert page.input_value("#upload-name") == "loans"  # named after the file
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/dataset-versions/\d+/$"))
    _until(page, "#version-status.ready")
    # the profile saw the mess: duplicate rows, an id column
    warnings = page.inner_text("#warnings")
    assert "duplicate_rows" in warnings and "application_id" in warnings
    page.select_option("#target", "approved")
    page.click("#target-form button[type=submit]")
    _until(page, "#split-form")
    assert page.input_value("#id_column") == "approved"  # the target, chosen from a list
    page.click("#split-form button[type=submit]")
    _until(page, "#split-summary")  # the split is a job: the worker may still be busy with the profile
    assert "stratified" in page.inner_text("#split-summary")


def _train(page, project: Project) -> None:
    page.goto(f"/projects/{project.pk}/experiments/new/")
    clean = page.locator("#experiment-recipe .steps > li[data-op=clean_categories]")
    clean.wait_for()  # the automatic recipe cleans the messy categories
    assert "region" in clean.inner_text()
    page.fill("#id_name", "First model")
    page.fill("#id_cv_folds", "2")
    for cb in page.locator("#algorithms input[type=checkbox]").all():
        cb.uncheck()
    page.check("#algorithms input[value=hist_gradient_boosting]")
    page.select_option("#id_method", "random")
    page.fill("#id_n_trials", "2")
    page.fill("#id_ensemble_k", "0")
    page.click("summary:has-text('Search spaces')")
    space = {"hist_gradient_boosting": {"max_iter": {"type": "int", "low": 10, "high": 20}}}
    page.fill("#id_spaces", json.dumps(space))
    page.click("#start-training")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    _until(page, "#experiment-status.succeeded", timeout=90)


def _evaluate_best_candidate(page) -> str:
    """The best candidate is pre-selected (not a baseline); evaluate it once; returns its run id."""
    best = page.locator("#leaderboard tr.best")
    best_id = best.get_attribute("data-run-id")
    assert best.get_attribute("data-kind") == "candidate"
    assert page.locator("#leaderboard tr[data-kind=baseline]").count() == 2  # pinned, not ranked
    assert page.input_value("#evaluate-run") == best_id
    assert "baseline" not in page.locator("#evaluate-run option:checked").inner_text()
    page.on("dialog", lambda d: d.accept())
    if page.locator("#evaluate-confirm").is_visible():  # small data: the candidate may overfit
        page.check("#evaluate-confirm")
    page.click("#evaluate-button")
    _until(page, "#verdict")
    assert page.get_attribute("#to-register", "href") == f"/runs/{best_id}/#register"
    return best_id


def _register(page, project: Project, run_id: str) -> ModelVersion:
    # the overview's next step is a link to the register form of the evaluated run
    page.goto(f"/projects/{project.pk}/")
    assert page.get_attribute("#next-step-link", "href") == f"/runs/{run_id}/#register"
    page.click("#next-step-link")
    page.wait_for_url(re.compile(rf"/runs/{run_id}/#register$"))
    assert page.locator("#register-form").is_visible()
    screenshots(page, "guided-run-register")
    page.click("#register-button")
    page.wait_for_url(re.compile(r"/models/\d+/$"))
    assert "Registered as model version 1" in page.inner_text("#messages")
    version = ModelVersion.objects.get()
    assert version.run_id == int(run_id)
    # its preparation job shows its progress, then the page shows the version ready
    _until(page, "#decide-form")
    page.wait_for_selector("#prepare", state="detached", timeout=60000)
    return version


def _go_no_go(page) -> None:
    # the gate needs the project's go: the deploy button waits for it
    assert page.get_attribute("#deploy-gate", "data-passed") == "0"
    assert "go / no-go decision is “Pending”" in page.inner_text("#gate-reasons")
    assert page.locator("#deploy-button").is_disabled() is False  # an owner may still override, in writing
    # a go without a rationale: the answer is under the rationale, the decision unchanged
    page.select_option("#decide-decision", "go")
    page.click("#decide-button")
    page.wait_for_selector("#decide-rationale[aria-invalid=true]")  # marked, scrolled to and focused
    assert "Explain the decision." in _field_error(page, "#decide-rationale")
    assert page.evaluate("document.activeElement.id") == "decide-rationale"
    assert page.input_value("#decide-decision") == "go"  # what was chosen is kept
    screenshots(page, "guided-model-version-error")
    page.fill("#decide-rationale", "The model beats the manual rule on held-out data; reviewers catch unsure cases.")
    page.click("#decide-button")
    page.wait_for_selector("#deploy-gate[data-passed='1']")
    assert page.inner_text("#decision-badge") == "Go"
    assert page.locator("#gate-reasons").count() == 0


def _deploy(page, project: Project) -> Deployment:
    page.fill("#deploy-name", "loan-decisions")
    page.fill("#deploy-review", "high")
    page.click("#deploy-button")
    page.wait_for_selector("#deploy-review[aria-invalid=true]")
    assert "between 0 and 1" in _field_error(page, "#deploy-review")
    assert page.input_value("#deploy-name") == "loan-decisions"
    assert not Deployment.objects.filter(project=project).exists()
    screenshots(page, "guided-model-version")
    # every answer below full confidence goes to a person: the try-it prediction will
    page.fill("#deploy-review", "1")
    page.click("#deploy-button")
    page.wait_for_url(re.compile(r"/deployments/\d+/$"))
    assert page.inner_text("#active-version") == "v1"
    return Deployment.objects.get(project=project)


def _try_it(page) -> None:
    body = json.loads(page.input_value("#try-body"))
    body["instances"][0]["region"] = "North "  # a spelling the recipe's cleaning maps to “North”
    page.fill("#try-body", json.dumps(body, indent=2))
    page.click("#try-send")
    page.wait_for_selector("#try-result")
    answer = json.loads(page.inner_text("#try-result"))
    prediction = answer["predictions"][0]
    assert prediction["prediction"] in ("approve", "reject")
    # flag mode (the default): answered now, and under the review threshold it waits for a person
    assert prediction["status"] == "accepted" and prediction["confidence"] < 1 and prediction["review_id"], answer
    summary = page.inner_text("#try-summary")  # the answer in words, above the JSON
    assert prediction["prediction"] in summary and f"review #{prediction['review_id']}" in summary
    assert page.locator("#try-error").count() == 0
    assert page.inner_text("[id^=review-panel-] [data-metric=pending]").strip() == "1"
    screenshots(page, "guided-deployment-try")


def _add_reviewer(page, project: Project) -> None:
    page.goto(f"/projects/{project.pk}/members/")
    page.fill("#id_username", "rita")
    page.select_option("#id_role", "reviewer")
    page.click("#add-member button[type=submit]")
    page.wait_for_selector("tr[data-username=rita]")


def _review(browser, base_url: str, project: Project) -> None:
    context = browser.new_context(base_url=base_url, viewport={"width": 768, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = _watch(page)
    try:
        login(page, "rita")
        page.goto(f"/projects/{project.pk}/reviews/")
        rows = page.locator("#queue tr.queue-row")
        assert rows.count() == 1
        rows.first.locator("a").last.click()
        page.wait_for_selector("#decision-panel")
        model_said = page.inner_text("#model-label")
        page.click("#btn-approve")
        page.wait_for_url(re.compile(r"/reviews/"))
        item = ReviewItem.objects.get(project=project)
        assert item.status == "approved" and item.decided_by.username == "rita"
        assert str(item.final_label) == model_said
        assert not errors and not page.evaluate("window.__csp || []"), errors
    finally:
        context.close()


def test_from_a_messy_csv_to_a_served_prediction_and_a_decided_review(browser, live_server, team, worker, tmp_path):
    started = time.monotonic()
    csv_path = tmp_path / "loans.csv"
    messy_loans(300, seed=5).to_csv(csv_path, index=False)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    errors = _watch(page)
    try:
        login(page, "olivia")
        project = _create_project(page)
        _upload_profile_split(page, project, csv_path)
        print(f"\n  data ready at {time.monotonic() - started:.1f} s")
        _train(page, project)
        print(f"  trained at {time.monotonic() - started:.1f} s")
        run_id = _evaluate_best_candidate(page)
        _register(page, project, run_id)
        _go_no_go(page)
        _deploy(page, project)
        _try_it(page)
        _add_reviewer(page, project)
        assert not errors and not page.evaluate("window.__csp || []"), errors
    finally:
        context.close()
    _review(browser, live_server.url, project)
    print(f"guided loop in the browser: {time.monotonic() - started:.1f} s")
