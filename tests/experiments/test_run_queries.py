"""Runs ordered by any metric of their task, filtered by metric ranges and algorithm; the
leaderboard's sort; every unknown name is a 400 listing the valid ones."""

from __future__ import annotations

import pytest

from experiments import services
from experiments.models import Experiment, Run

pytestmark = pytest.mark.django_db
URL = "/api/v1/runs/"


@pytest.fixture
def runs(team, cancer_version):
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(dataset_version=cancer_version, target="diagnosis", cv_folds=3),
    )
    Experiment.objects.filter(pk=exp.pk).update(status="succeeded")
    made = {}
    for algo, auc, f1 in [("dummy", 0.5, 0.4), ("logistic", 0.93, 0.88), ("random_forest", 0.97, 0.91)]:
        made[algo] = Run.objects.create(
            project=team.project,
            experiment=exp,
            algorithm=algo,
            status="succeeded",
            score=f1,
            cv_metrics={"roc_auc": {"mean": auc, "std": 0.01}, "f1": {"mean": f1, "std": 0.02}},
        )
    made["failed"] = Run.objects.create(project=team.project, experiment=exp, algorithm="svm", status="failed")
    return exp, made


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [r["id"] for r in response.json()["results"]]


def test_order_by_any_metric_both_ways_missing_last(api, runs):
    exp, made = runs
    viewer = api("viewer")
    best_first = ids(viewer.get(URL, {"experiment": exp.pk, "ordering": "-roc_auc"}))
    assert best_first == [made["random_forest"].pk, made["logistic"].pk, made["dummy"].pk, made["failed"].pk]
    worst_first = ids(viewer.get(URL, {"experiment": exp.pk, "sort": "roc_auc"}))
    assert worst_first == [made["dummy"].pk, made["logistic"].pk, made["random_forest"].pk, made["failed"].pk]
    # a metric and a plain field together
    assert ids(viewer.get(URL, {"experiment": exp.pk, "ordering": "-f1,created_at"}))[0] == made["random_forest"].pk


def test_filter_by_metric_range_and_algorithm(api, runs):
    exp, made = runs
    viewer = api("viewer")
    good = ids(viewer.get(URL, {"experiment": exp.pk, "roc_auc__gte": "0.9", "ordering": "roc_auc"}))
    assert good == [made["logistic"].pk, made["random_forest"].pk]
    assert ids(viewer.get(URL, {"experiment": exp.pk, "roc_auc__gt": "0.9", "f1__lt": "0.9"})) == [made["logistic"].pk]
    assert ids(viewer.get(URL, {"experiment": exp.pk, "score__lte": "0.5"})) == [made["dummy"].pk]
    assert ids(viewer.get(URL, {"experiment": exp.pk, "algorithm": "logistic"})) == [made["logistic"].pk]


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"ordering": "-rmse"}, "ordering", "RMSE is a regression metric; these runs are classification: use accuracy"),
        ({"ordering": "speed"}, "ordering", "order by created_at, score, trial_number, fit_seconds, accuracy"),
        ({"roc_auc__gte": "high"}, "roc_auc__gte", "must be a number"),
        ({"mae__lte": "3"}, "mae__lte", "regression metric"),
        ({"roc_auc__between": "1"}, "roc_auc__between", "<metric>__gte, __gt, __lte or __lt"),
        ({"algorithm": "xgboost"}, "algorithm", "Unknown algorithm 'xgboost': use"),
        ({"status": "done"}, "status", "use queued, running, succeeded, failed or cancelled"),
    ],
)
def test_bad_queries_are_400_naming_the_valid_values(api, runs, params, field, needle):
    exp, _ = runs
    r = api("viewer").get(URL, {"experiment": exp.pk, **params})
    assert r.status_code == 400, r.json()
    assert needle in r.json()["errors"][field][0], r.json()


def test_outsiders_see_no_runs_and_cannot_learn_the_task(api, runs):
    exp, _ = runs
    assert api("outsider").get(URL, {"experiment": exp.pk}).json()["count"] == 0
    # the task type comes from experiments the caller can see: any metric is accepted, nothing found
    assert api("outsider").get(URL, {"experiment": exp.pk, "ordering": "-rmse"}).json()["count"] == 0


def test_leaderboard_sort_ranks_by_a_metric_and_refuses_unknown_ones(api, runs):
    exp, made = runs
    viewer = api("viewer")
    ranked = [r["id"] for r in viewer.get(f"/api/v1/experiments/{exp.pk}/", {"sort": "roc_auc"}).json()["runs"]]
    assert ranked == [made["random_forest"].pk, made["logistic"].pk, made["dummy"].pk, made["failed"].pk]
    worst = [r["id"] for r in viewer.get(f"/api/v1/experiments/{exp.pk}/", {"sort": "-roc_auc"}).json()["runs"]]
    assert worst == [made["dummy"].pk, made["logistic"].pk, made["random_forest"].pk, made["failed"].pk]
    r = viewer.get(f"/api/v1/experiments/{exp.pk}/", {"sort": "-rmse"})
    assert r.status_code == 400
    assert r.json()["errors"]["sort"][0].startswith("Unknown metric 'rmse' for this classification experiment: sort by")


def test_experiment_metric_lists_the_task_metrics(api, team, cancer_version):
    body = {"project": team.project.pk, "dataset_version": cancer_version.pk, "target": "diagnosis", "metric": "speed"}
    r = api("owner").post("/api/v1/experiments/", body, format="json")
    assert r.status_code == 400
    assert "choose one of accuracy, balanced_accuracy" in r.json()["errors"]["metric"][0]
