"""PR AUC (average precision): the metric the imbalance warning recommends is an accepted metric
everywhere a metric is chosen or reported: the project's success metric, the experiment's
leaderboard, diagnostics and the one final evaluation with its bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from datasets.profiling.target import IMBALANCE_METRICS, SKEWED_TARGET_METRICS
from experiments.ml import metrics as training
from experiments.ml.average_precision import average_precision, pr_auc
from experiments.models import Experiment
from projects.metrics import METRICS
from tests.conftest import wait_for_job
from tests.experiments.conftest import FAST_SEARCH
from tests.experiments.test_api import URL, body, wait_experiment


def test_average_precision_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(4)
    y = rng.random(400) < 0.1  # a rare positive class
    score = np.round(np.where(y, rng.random(400) * 0.6 + 0.3, rng.random(400) * 0.7), 1)  # many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)
    assert average_precision(np.zeros(5, bool), np.arange(5.0)) is None


def test_macro_pr_auc_equals_scikit_learn_for_three_classes():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    proba[np.arange(300), y] += 0.3
    expected = average_precision_score(np.eye(3)[y], proba, average="macro")
    assert pr_auc(y, proba, 3) == pytest.approx(expected, abs=1e-12)


def test_pr_auc_moves_with_a_rare_class_where_accuracy_does_not():
    rng = np.random.default_rng(6)
    y = (rng.random(2000) < 0.02).astype(int)
    useless = np.column_stack([np.full(2000, 0.98), np.full(2000, 0.02)])
    good = np.column_stack([1 - (y * 0.7 + 0.1), y * 0.7 + 0.1])
    pred = np.zeros(2000, dtype=int)
    weak = training.compute_metrics("classification", y, pred, useless, np.array([0, 1]))
    strong = training.compute_metrics("classification", y, pred, good, np.array([0, 1]))
    assert weak["accuracy"] == strong["accuracy"] > 0.95
    assert weak["pr_auc"] == pytest.approx(y.mean(), abs=1e-9) and strong["pr_auc"] == pytest.approx(1.0)


def test_every_metric_a_profile_warning_recommends_is_accepted():
    for name in IMBALANCE_METRICS:
        assert name in METRICS and METRICS[name].task_type == "classification"
        assert name in training.CLASSIFICATION_METRICS
    for name in SKEWED_TARGET_METRICS:
        assert name in METRICS and METRICS[name].task_type == "regression"
        assert name in training.REGRESSION_METRICS
    assert METRICS["pr_auc"].higher_is_better is True and METRICS["pr_auc"].bounded_01


@pytest.mark.django_db
def test_project_accepts_pr_auc_as_success_metric_and_names_the_field_when_wrong(api, team):
    owner = api("owner")
    ok = owner.post(
        "/api/v1/projects/",
        {"name": "Fraud", "task_type": "classification", "success_metric": "pr_auc", "success_threshold": 0.4},
        format="json",
    )
    assert ok.status_code == 201, ok.data
    assert ok.data["success_metric"] == "pr_auc"
    for bad, field in (
        ({"name": "x", "task_type": "regression", "success_metric": "pr_auc"}, "success_metric"),
        (
            {"name": "x", "task_type": "classification", "success_metric": "pr_auc", "success_threshold": 1.4},
            "success_threshold",
        ),
    ):
        response = owner.post("/api/v1/projects/", bad, format="json")
        assert response.status_code == 400 and field in response.data["errors"], response.data


def test_an_experiment_ranked_and_finally_evaluated_by_pr_auc(team, api, worker):
    from tests.experiments.conftest import cancer_frame, make_version

    team.project.success_metric = "pr_auc"
    team.project.success_threshold = 0.5
    team.project.baseline_score = 0.6
    team.project.save()
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    owner = api("owner")
    resp = owner.post(URL, body(team, version, search=FAST_SEARCH), format="json")
    assert resp.status_code == 202, resp.json()
    assert resp.json()["metric"] == "pr_auc"  # the project's success metric by default
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded", exp.error
    runs = owner.get(f"{URL}{exp.pk}/").json()["runs"]
    scores = [r["cv_metrics"]["pr_auc"]["mean"] for r in runs if r["status"] == "succeeded"]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    best = runs[0]
    assert best["score"] == best["cv_metrics"]["pr_auc"]["mean"]

    # Diagnostics score the learning curve and permutation importance with the same PR AUC.
    assert owner.post(f"/api/v1/runs/{best['id']}/diagnose/").status_code == 202
    from experiments.models import Run

    job = wait_for_job(Run.objects.get(pk=best["id"]).diagnostics_job_id)
    assert job.status == "succeeded", job.error
    diag = owner.get(f"/api/v1/runs/{best['id']}/").json()["diagnostics"]
    assert diag["learning_curve"]["metric"] == "pr_auc"
    assert all(0 < v <= 1 for v in diag["learning_curve"]["validation"])

    resp = owner.post(f"{URL}{exp.pk}/evaluate/", {"run": best["id"]}, format="json")
    assert resp.status_code == 202, resp.json()
    job = wait_for_job(Experiment.objects.get(pk=exp.pk).evaluation_job_id)
    assert job.status == "succeeded", job.error
    ev = Experiment.objects.get(pk=exp.pk).test_evaluation
    m = ev["metrics"]["pr_auc"]
    assert ev["metric"] == "pr_auc"
    assert 0 < m["ci_low"] <= m["value"] <= m["ci_high"] <= 1 and m["ci_high"] - m["ci_low"] > 0
    assert "PR AUC" in ev["verdict"]["text"] and "95% CI" in ev["verdict"]["text"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_leaderboard_page_ranks_by_pr_auc(page, team, api, worker):
    from pathlib import Path

    from tests.conftest import login
    from tests.experiments.conftest import cancer_frame, make_version

    team.project.success_metric = "pr_auc"
    team.project.save()
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    resp = api("owner").post(URL, body(team, version, search=FAST_SEARCH), format="json")
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded", exp.error
    login(page, "victor")
    shots = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/experiments/{exp.pk}/")
        # The ranking column (starred) comes first after the run: pr_auc, the project's metric.
        assert page.locator("th.rank-metric").first.inner_text().strip().lower() == "pr_auc"
        assert page.locator("#sort").input_value() == "pr_auc"
        page.screenshot(path=str(shots / f"leaderboard-pr-auc-{width}.png"))
