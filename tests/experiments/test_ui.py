"""Pages: permissions, the create form's refusals, the workflow stages; and the browser flow."""

from __future__ import annotations

import re

import pytest

from experiments.models import Experiment
from projects.workflow import workflow_for
from tests.conftest import login
from tests.experiments.conftest import cancer_frame, make_version


@pytest.mark.django_db
def test_pages_need_membership_and_role(client, team, cancer_version):
    client.force_login(team.outsider)
    assert client.get(f"/projects/{team.project.pk}/experiments/").status_code == 404
    client.force_login(team.viewer)
    assert client.get(f"/projects/{team.project.pk}/experiments/").status_code == 200
    assert client.get(f"/projects/{team.project.pk}/experiments/new/").status_code == 403


@pytest.mark.django_db
def test_create_form_shows_the_reason_and_creates_nothing(client, team, cancer_version):
    client.force_login(team.editor)
    resp = client.post(
        f"/projects/{team.project.pk}/experiments/new/",
        {
            "dataset_version": cancer_version.pk,
            "target": "nope",
            "cv_folds": 3,
            "cv_strategy": "auto",
            "algorithms": ["logistic"],
            "method": "random",
            "n_trials": 1,
            "ensemble_k": 0,
            "spaces": "",
        },
    )
    assert resp.status_code == 200
    # the target is chosen from the version's columns: a stranger is refused under that field
    assert "nope is not one of the available choices" in resp.context["form"].errors["target"][0]
    assert 'id="field-target"' in resp.content.decode()
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_workflow_blocks_model_until_split_and_metric(team):
    stages = {s.key: s for s in workflow_for(project=team.project)}
    assert stages["model"].state == "blocked" and "Split the data first" in stages["model"].detail
    make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    stages = {s.key: s for s in workflow_for(project=team.project)}
    assert stages["model"].state == "todo"
    assert stages["evaluate"].state == "blocked"
    team.project.success_metric = ""
    team.project.save()
    stages = {s.key: s for s in workflow_for(project=team.project)}
    assert "define a success metric before training" in stages["model"].detail.lower()


@pytest.mark.browser
def test_browser_train_diagnose_compare_and_evaluate_once(page, team, worker):
    make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    login(page, team.owner.username)
    page.goto(f"/projects/{team.project.pk}/experiments/")
    page.click("#new-experiment")
    page.select_option("#id_target", "diagnosis")
    # the automatic recipe of this version, for this target, is shown before training
    page.wait_for_selector("#experiment-recipe[aria-busy=false] .steps > li")
    page.fill("#id_cv_folds", "3")
    for cb in page.locator("#algorithms input[type=checkbox]").all():
        cb.uncheck()
    page.check("#algorithms input[value=decision_tree]")
    page.select_option("#id_method", "random")
    page.fill("#id_n_trials", "2")
    page.fill("#id_ensemble_k", "2")
    page.click("summary:has-text('Search spaces')")
    page.fill("#id_spaces", '{"decision_tree": {"max_depth": {"type": "int", "low": 2, "high": 4}}}')
    page.click("#start-training")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"), timeout=30000)  # creates the experiment and queues its job
    page.wait_for_selector("#experiment-status.succeeded", timeout=60000)
    rows = page.locator("#leaderboard tr[data-run-id]")
    assert rows.count() == 5  # 2 baselines, 2 trials, 1 ensemble
    assert page.locator("#leaderboard tr.pinned[data-kind=baseline]").count() == 2
    assert page.locator("#leaderboard").get_by_text("dummy").count() >= 1
    page.wait_for_selector("#score-chart .main-svg")

    # Compare the two best runs.
    page.locator("#leaderboard tbody input[type=checkbox]").nth(0).check()
    page.locator("#leaderboard tbody input[type=checkbox]").nth(1).check()
    page.click("#compare-runs")
    page.wait_for_selector("#compare")
    assert page.locator("#compare thead th").count() == 3
    page.wait_for_selector("#chart-compare .main-svg")
    page.go_back()

    # Diagnose the best run.
    best = page.locator("#leaderboard tr.best")
    best_id = best.get_attribute("data-run-id")
    assert best.get_attribute("data-kind") != "baseline"
    best.locator("a").first.click()
    page.click("#diagnose")
    page.wait_for_selector("#chart-confusion .main-svg", timeout=60000)
    page.wait_for_selector("#chart-roc .main-svg")
    first = page.text_content("#t-recall")
    page.fill("#threshold", "1")
    page.dispatch_event("#threshold", "input")
    assert page.text_content("#t-threshold") == "0.10"
    assert float(page.text_content("#t-recall")) >= float(first)
    assert page.locator("#segments tbody tr").count() >= 1

    # Evaluate once.
    page.go_back()
    page.go_back()
    page.on("dialog", lambda d: d.accept())
    assert page.input_value("#evaluate-run") == best_id  # the best candidate, pre-selected
    if page.locator("#evaluate-confirm").is_visible():  # the best candidate may overfit small data
        page.check("#evaluate-confirm")
    page.click("#evaluate-button")
    page.wait_for_selector("#verdict", timeout=60000)
    assert "baseline 0.6" in page.text_content("#verdict")
    assert page.locator(".badge.locked").count() == 1
    assert page.locator("#evaluate-button").count() == 0
