"""The binary positive class is explicit: chosen on the experiment (default: the second of the
sorted classes, what training always used), used by every metric that depends on it, and
carried to the registered model version for monitoring. The datasets here have classes that sort
the "wrong" way: the class of interest sorts first."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from experiments.ml.metrics import bootstrap_ci, compute_metrics, default_positive, positive_index
from experiments.models import Experiment
from tests.experiments.conftest import cancer_frame, make_version

CLASSES = np.array(["approve", "reject"])  # sorted: "approve" first


def _labels(seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, size=n, p=[0.3, 0.7])
    flip = rng.random(n) < 0.25
    pred = np.where(flip, np.where(truth == "approve", "reject", "approve"), truth)
    p_approve = np.clip(np.where(truth == "approve", 0.7, 0.3) + rng.normal(0, 0.2, n), 0.01, 0.99)
    return truth, pred, np.column_stack([p_approve, 1 - p_approve])


def test_binary_metrics_follow_the_positive_class():
    truth, pred, proba = _labels()
    out = compute_metrics("classification", truth, pred, proba, CLASSES, positive="approve")
    assert out["f1"] == pytest.approx(skm.f1_score(truth, pred, pos_label="approve"))
    assert out["precision"] == pytest.approx(skm.precision_score(truth, pred, pos_label="approve"))
    assert out["recall"] == pytest.approx(skm.recall_score(truth, pred, pos_label="approve"))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(truth == "approve", proba[:, 0]))
    default = compute_metrics("classification", truth, pred, proba, CLASSES)
    assert default["f1"] == pytest.approx(skm.f1_score(truth, pred, pos_label="reject"))
    assert default["f1"] != pytest.approx(out["f1"])  # the choice matters on imbalanced classes
    assert default["accuracy"] == out["accuracy"] and default["log_loss"] == out["log_loss"]
    assert default_positive(["approve", "reject"]) == "reject" and positive_index([0, 1], "1") == 1


def test_the_bootstrap_interval_is_about_the_positive_class():
    truth, pred, proba = _labels(seed=1)
    ci = bootstrap_ci("classification", truth, pred, proba, CLASSES, n_boot=300, positive="approve")
    assert ci["f1"]["value"] == pytest.approx(skm.f1_score(truth, pred, pos_label="approve"))
    assert ci["f1"]["ci_low"] < ci["f1"]["value"] < ci["f1"]["ci_high"]


def _body(team, version, **extra):
    return {
        "project": team.project.pk,
        "dataset_version": version.pk,
        "target": "diagnosis",
        "cv_folds": 3,
        "algorithms": ["logistic"],
        "search": {"method": "random", "n_trials": 0, "ensemble_k": 0},
        **extra,
    }


@pytest.mark.django_db
def test_an_experiment_stores_its_positive_class(team, api):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")  # benign < malignant
    chosen = api("owner").post("/api/v1/experiments/", _body(team, version, positive_class="benign"), format="json")
    assert chosen.status_code == 202, chosen.json()
    assert chosen.json()["positive_class"] == "benign"
    default = api("owner").post("/api/v1/experiments/", _body(team, version, name="default"), format="json")
    assert default.json()["positive_class"] == "malignant"


@pytest.mark.django_db
def test_a_positive_class_that_is_not_a_class_is_refused(team, api):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    bad = api("owner").post("/api/v1/experiments/", _body(team, version, positive_class="healthy"), format="json")
    assert bad.status_code == 400 and "positive_class" in bad.json()["errors"], bad.json()
    assert not Experiment.objects.exists()
