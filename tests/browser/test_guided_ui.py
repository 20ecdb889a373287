"""What a person checks in the browser: the best candidate pre-selected and a warning before a
baseline, the recipe editor round trip on messy categories, errors next to their control, and
the narrow-screen navigation."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from datasets.models import DatasetVersion, Recipe
from datasets.profiling import profile_frame
from datasets.services import dataset_create, version_create_from_frame, version_split
from experiments.models import Experiment
from projects.models import Project
from tests.browser.populated import messy_loans
from tests.conftest import login
from tests.experiments.test_leaderboard import board  # noqa: F401 - the fixture, shared

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.sourceFile));"""


@pytest.fixture
def page(page):
    """The browser page, failing the test on any CSP violation or console error it saw."""
    errors: list[str] = []
    page.context.add_init_script(WATCH)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    violations = page.evaluate("window.__csp || []")
    assert not violations and not errors, violations + errors


@pytest.fixture
def messy_version(team):
    frame = messy_loans(240)
    dataset = dataset_create(project=team.project, name="Loan applications", created_by=team.owner)
    version = version_create_from_frame(dataset=dataset, frame=frame, created_by=team.owner, enqueue_profile=False)
    profile = profile_frame(frame, target="approved", task="classification")
    DatasetVersion.objects.filter(pk=version.pk).update(
        target_column="approved",
        profile={k: v for k, v in profile.items() if k != "warnings"},
        warnings=profile["warnings"],
    )
    version.refresh_from_db()
    return version_split(version=version, actor=team.owner, strategy="stratified", column="approved")


def test_best_candidate_is_preselected_and_a_baseline_needs_confirmation(page, team, board):  # noqa: F811
    exp, runs = board
    login(page, "eddie")
    page.goto(f"/experiments/{exp.pk}/")
    # the logistic baseline scores best, yet it is pinned on top and not the best candidate
    assert page.locator("#leaderboard tr[data-run-id]").first.get_attribute("data-kind") == "baseline"
    assert page.get_attribute("#leaderboard tr.best", "data-run-id") == str(runs["forest"].pk)
    assert page.input_value("#evaluate-run") == str(runs["forest"].pk)
    # the best candidate overfits: the warning and the confirmation are there before any click
    assert "overfits" in page.inner_text("#evaluate [data-run-warnings]")
    page.select_option("#evaluate-run", str(runs["tree"].pk))
    assert not page.locator("[data-confirm-row]").is_visible()
    page.select_option("#evaluate-run", str(runs["logistic"].pk))
    assert "is a baseline" in page.inner_text("#evaluate [data-run-warnings]")
    assert page.locator("#evaluate-confirm").is_visible()
    page.on("dialog", lambda d: d.accept())
    page.click("#evaluate-button")  # the browser refuses: the box is required
    exp.refresh_from_db()
    assert exp.evaluated_run_id is None
    page.check("#evaluate-confirm")
    page.click("#evaluate-button")
    page.wait_for_selector("#messages li.success")
    exp.refresh_from_db()
    assert exp.evaluated_run_id == runs["logistic"].pk


def test_recipe_editor_round_trip_cleans_messy_categories(page, team, messy_version):
    login(page, "eddie")
    page.goto(f"/projects/{team.project.pk}/experiments/new/")
    editor = "#experiment-recipe"
    clean = page.locator(f"{editor} .steps > li[data-op=clean_categories]")
    clean.wait_for()
    assert "several ways" in clean.inner_text()
    # preview: the mapping learned on training rows, typos marked
    page.click(f"{editor} [data-role=preview]")
    clean.locator("table.mapping").first.wait_for()
    mapping = clean.inner_text()
    assert "“Soutth”" in mapping and "spelling" in mapping and "“north ”" in mapping
    # edit: remove drop_duplicates, change a scaler, add a ratio
    page.click(f"{editor} .steps > li[data-op=drop_duplicates] [data-step-action=remove]")
    scale = page.locator(f"{editor} .steps > li[data-op=scale]").first
    scale.locator("[data-step-action=edit]").click()
    scale.locator("select[data-key=method]").select_option("minmax")
    scale.get_by_role("button", name="Save step").click()
    page.click(f"{editor} [data-role=add-box] summary")
    page.select_option(f"{editor}-op", "ratio")
    page.select_option(f"{editor}-add-numerator", "debt")
    page.select_option(f"{editor}-add-denominator", "income")
    page.fill(f"{editor}-add-name", "debt_ratio")
    page.click(f"{editor} [data-role=add-step]")
    sent = json.loads(page.input_value("#id_recipe"))
    assert "drop_duplicates" not in [s["op"] for s in sent]
    assert any(s["op"] == "scale" and s["method"] == "minmax" for s in sent)
    assert sent[-1] == {"op": "ratio", "numerator": "debt", "denominator": "income", "name": "debt_ratio"}
    page.fill("#id_recipe_name", "loans, tidy regions")
    page.fill("#id_cv_folds", "3")
    page.click("#start-training")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    experiment = Experiment.objects.get()
    assert experiment.recipe_steps == sent and experiment.recipe.name == "loans, tidy regions"
    assert "clean_categories" in page.inner_text(".kv")


def test_a_bad_recipe_step_is_shown_at_the_step_and_nothing_is_created(page, team, messy_version):
    login(page, "eddie")
    page.goto(f"/projects/{team.project.pk}/experiments/new/")
    editor = "#experiment-recipe"
    page.wait_for_selector(f"{editor} .steps > li")
    page.click(f"{editor} [data-role=json-box] summary")
    bad = [{"op": "drop_columns", "columns": ["application_id"]}, {"op": "scale", "columns": ["region"]}]
    page.fill(f"{editor}-json", json.dumps(bad))
    page.click(f"{editor} [data-role=apply-json]")
    page.click("#start-training")
    invalid = page.locator(f"{editor} .steps > li.invalid")
    invalid.wait_for()
    assert invalid.get_attribute("data-op") == "scale" and "not numeric" in invalid.inner_text()
    assert page.evaluate("el => el.getBoundingClientRect().top < innerHeight", invalid.element_handle())
    assert page.locator(f"{editor} .steps > li").count() == 2  # the edits are kept
    assert not Experiment.objects.exists() and not Recipe.objects.exists()


def test_errors_sit_next_to_the_control_that_caused_them(page, team):
    login(page, "olivia")
    # a field error under its field, in view and focused
    page.goto(f"/projects/{team.project.pk}/problem/")
    page.fill("#id_baseline_score", "2")
    page.select_option("#id_success_metric", "f1")
    page.click("#problem-form button[type=submit]")
    field = page.locator("#field-baseline_score")
    field.locator(".errorlist li").wait_for()
    assert page.evaluate("document.activeElement.id") == "id_baseline_score"
    # a message from a redirect is moved next to the form that caused it
    page.fill("#confirm_name", "not the name")
    page.click("#delete-project button[type=submit]")
    feedback = page.locator("#delete-project .form-feedback li.error")
    feedback.wait_for()
    assert "Type the project's name" in feedback.inner_text()
    assert page.locator("#messages").count() == 0
    assert Project.objects.filter(pk=team.project.pk).exists()
    # the upload form names the missing field under it, before sending anything
    page.goto(f"/projects/{team.project.pk}/datasets/")
    page.click("#upload-button")
    assert "Give the dataset a name" in page.inner_text("#upload-form .field:has(#upload-name)")
    assert "Choose a file first" in page.inner_text("#upload-form .dropzone")


def test_narrow_screens_get_a_menu_and_tabs_that_show_they_scroll(page, team):
    page.set_viewport_size({"width": 390, "height": 800})
    login(page, "olivia")
    page.goto(f"/projects/{team.project.pk}/")
    assert page.locator("#menu-toggle").is_visible()
    assert not page.get_by_role("link", name="API tokens").is_visible()
    page.click("#menu-toggle")
    expect(page.get_by_role("link", name="API tokens")).to_be_visible()
    tabs = page.locator("[data-tabs]")
    assert "more-right" in tabs.get_attribute("class")
    assert page.locator(".tabs-next").is_visible()
    page.click(".tabs-next")
    page.wait_for_selector("[data-tabs].more-left")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    assert not page.locator("#menu-toggle").is_visible()
    assert "more-right" not in (tabs.get_attribute("class") or "")
