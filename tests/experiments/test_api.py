"""Experiments over the API with a real worker: create checks, permissions, the whole flow."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.test import Client

from datasets.models import DatasetVersion, Recipe
from experiments import coordinator, services
from experiments.models import Experiment, Run
from jobs.models import Job
from mlplatform.artifacts import model_load
from tests.conftest import wait_for_job
from tests.experiments.conftest import FAST_SEARCH, cancer_frame, make_version

URL = "/api/v1/experiments/"


def body(team, version, **extra):
    data = {
        "project": team.project.pk,
        "dataset_version": version.pk,
        "target": "diagnosis",
        "cv_folds": 3,
        "algorithms": ["random_forest"],
        "search": FAST_SEARCH,
    }
    data.update(extra)
    return data


def wait_experiment(pk: int, timeout: float = 90.0) -> Experiment:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exp = Experiment.objects.get(pk=pk)
        if exp.status in ("succeeded", "failed", "cancelled"):
            return exp
        time.sleep(0.2)
    raise AssertionError(f"experiment {pk} still {Experiment.objects.get(pk=pk).status}")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"target": "no_such_column"}, "target", "not in this dataset version"),
        ({"metric": "rmse"}, "metric", "regression metric"),
        ({"metric": "nonsense"}, "metric", "Unknown metric"),
        ({"algorithms": ["linear"]}, "algorithms", "Unknown algorithm"),
        ({"algorithms": ["dummy"]}, "algorithms", "baseline"),
        ({"cv_strategy": "time"}, "cv_strategy", "time split"),
        ({"search": {"method": "annealing"}}, "search", "search.method"),
        (
            {
                "search": {
                    "method": "grid",
                    "spaces": {"random_forest": {"bogus": {"type": "int", "low": 1, "high": 2}}},
                }
            },
            "search",
            "no parameter",
        ),
        ({"cv_folds": 1}, "cv_folds", ""),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(team, api, cancer_version, extra, field, words):
    resp = api("owner").post(URL, body(team, cancer_version, **extra), format="json")
    assert resp.status_code == 400, resp.json()
    assert field in resp.json()["errors"], resp.json()
    assert words in resp.json()["detail"] or words in str(resp.json()["errors"])
    assert not Experiment.objects.exists()
    assert not Job.objects.filter(kind="experiment.train").exists()


@pytest.mark.django_db
def test_create_refuses_a_version_without_split(team, api):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis", split=False)
    resp = api("owner").post(URL, body(team, version), format="json")
    assert resp.status_code == 400
    assert "split the data first" in resp.json()["detail"]
    assert resp.json()["errors"].keys() == {"dataset_version"}


@pytest.mark.django_db
def test_create_refuses_a_one_class_target(team, api):
    frame = cancer_frame()
    frame["diagnosis"] = "benign"
    version = make_version(team.project, team.owner, frame, "diagnosis", strategy="random")
    resp = api("owner").post(URL, body(team, version), format="json")
    assert resp.status_code == 400
    assert "single class" in resp.json()["detail"]


@pytest.mark.django_db
def test_create_refuses_a_non_numeric_regression_target(regression_team, api):
    version = make_version(
        regression_team.project, regression_team.owner, cancer_frame(), "diagnosis", strategy="random"
    )
    resp = api("owner").post(
        URL, body(regression_team, version, algorithms=["ridge"], search={"n_trials": 1}), format="json"
    )
    assert resp.status_code == 400
    assert "must be numeric" in resp.json()["errors"]["target"][0]


@pytest.mark.django_db
def test_foreign_dataset_version_or_recipe_is_refused(team, api, cancer_version):
    foreign = make_version(team.other_project, team.outsider, cancer_frame(), "diagnosis")
    resp = api("owner").post(URL, body(team, foreign), format="json")
    assert resp.status_code in (400, 404)
    assert "dataset_version" in resp.json().get("errors", {})
    recipe = Recipe.objects.create(project=team.other_project, name="theirs", steps=[])
    resp = api("owner").post(URL, body(team, cancer_version, recipe=recipe.pk), format="json")
    assert resp.status_code == 400 and "recipe" in resp.json()["errors"]
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_outsider_gets_404_and_viewer_403(team, api, cancer_version):
    assert api("outsider").post(URL, body(team, cancer_version), format="json").status_code == 404
    assert api("viewer").post(URL, body(team, cancer_version), format="json").status_code == 403
    assert api("reviewer").post(URL, body(team, cancer_version), format="json").status_code == 403
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_algorithm_catalogue_lists_spaces(api):
    resp = api("viewer").get("/api/v1/algorithms/?task_type=classification")
    assert resp.status_code == 200
    keys = {a["key"] for a in resp.json()["algorithms"]}
    assert {
        "logistic",
        "ridge",
        "decision_tree",
        "random_forest",
        "extra_trees",
        "hist_gradient_boosting",
        "svm",
        "knn",
        "naive_bayes",
        "mlp",
    } <= keys
    rf = next(a for a in resp.json()["algorithms"] if a["key"] == "random_forest")
    assert rf["space"]["n_estimators"]["type"] == "int"
    assert api("viewer").get("/api/v1/algorithms/?task_type=clustering").status_code == 400
    reg = api("viewer").get("/api/v1/algorithms/?task_type=regression").json()
    assert {"lasso", "linear"} <= {a["key"] for a in reg["algorithms"]}


# --- the flow with a real worker --------------------------------------------------------------


def test_classification_flow_baselines_search_ensemble_diagnose_evaluate_once(team, api, worker):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    owner = api("owner")
    resp = owner.post(URL, body(team, version), format="json")
    assert resp.status_code == 202, resp.json()
    exp_id = resp.json()["id"]
    assert resp.json()["metric"] == "f1" and resp.json()["cv_strategy"] == "stratified"
    # One handle for the whole training: the job's status covers every trial it started.
    assert resp["Location"] == f"/api/v1/jobs/{resp.json()['job_id']}/" and resp.json()["job"] == resp.json()["job_id"]
    job = owner.get(resp["Location"], {"wait": 60}).json()
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        job = owner.get(resp["Location"], {"wait": 60}).json()
    exp = Experiment.objects.get(pk=exp_id)
    assert job["status"] == "succeeded" and exp.status == "succeeded", (job, exp.error)
    assert job["own_status"] == "succeeded" and job["progress"] == 100
    assert job["children"]["total"] == exp.runs.count() == job["children"]["succeeded"]
    trial_log = Job.objects.filter(parent_id=job["id"]).exclude(kind="experiment.train").first().log
    assert "fold 1 of 3" in trial_log and "fold 3 of 3" in trial_log  # progress moved during the folds

    detail = owner.get(f"{URL}{exp_id}/").json()
    assert detail["progress"] == 100
    kinds = [r["kind"] for r in detail["runs"]]
    assert kinds.count("baseline") == 2 and kinds.count("candidate") == 2 and kinds.count("ensemble") == 1
    algos = {r["algorithm"] for r in detail["runs"]}
    assert {"dummy", "logistic", "random_forest", "ensemble"} <= algos
    for r in detail["runs"]:
        assert r["status"] == "succeeded", r
        assert set(r["cv_metrics"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
        assert r["cv_metrics"]["f1"]["std"] is not None
        assert r["train_metrics"]["f1"] is not None and r["fit_seconds"] > 0 and r["model_size_bytes"] > 0
    scores = [r["score"] for r in detail["runs"]]
    assert scores == sorted(scores, reverse=True)  # best first
    dummy = next(r for r in detail["runs"] if r["algorithm"] == "dummy")
    best = detail["runs"][0]
    assert best["score"] > dummy["score"] + 0.3  # the dummy predicts one class: F1 of the positive class is poor
    assert detail["baselines"]["project_baseline_score"] == 0.6
    assert detail["baselines"]["dummy_score"] == dummy["score"]
    browser = Client()
    browser.force_login(team.viewer)
    page = browser.get(f"/experiments/{exp_id}/").content.decode()
    assert page.count("beats baseline") == sum(1 for r in detail["runs"] if r["score"] >= 0.6)
    by_loss = owner.get(f"{URL}{exp_id}/?sort=log_loss").json()["runs"]
    losses = [r["cv_metrics"]["log_loss"]["mean"] for r in by_loss]
    assert losses == sorted(losses)

    # Diagnostics on the validation split.
    assert api("viewer").post(f"/api/v1/runs/{best['id']}/diagnose/").status_code == 403
    assert api("outsider").get(f"/api/v1/runs/{best['id']}/").status_code == 404
    resp = owner.post(f"/api/v1/runs/{best['id']}/diagnose/")
    assert resp.status_code == 202
    run = Run.objects.get(pk=best["id"])
    job = wait_for_job(run.diagnostics_job_id)
    assert job.status == "succeeded", job.error
    diag = owner.get(f"/api/v1/runs/{best['id']}/").json()["diagnostics"]
    n_val = version.split["counts"]["validation"]
    assert diag["n_val"] == n_val
    assert np.array(diag["confusion_matrix"]).sum() == n_val
    assert diag["classes"] == ["benign", "malignant"]
    assert len(diag["roc"]["fpr"]) == len(diag["roc"]["tpr"]) > 2
    assert [t["threshold"] for t in diag["thresholds"]][:2] == [0.05, 0.1]
    assert len(diag["learning_curve"]["train_sizes"]) == 4
    assert {p["feature"] for p in diag["permutation_importance"]} <= set(cancer_frame().columns) - {"diagnosis"}
    assert diag["segments"] and diag["segments"][0]["vs_overall"] >= diag["segments"][-1]["vs_overall"]
    assert DatasetVersion.objects.get(pk=version.pk).test_used_at is None

    # The one final evaluation.
    assert api("viewer").post(f"{URL}{exp_id}/evaluate/", {"run": best["id"]}, format="json").status_code == 403
    assert api("outsider").post(f"{URL}{exp_id}/evaluate/", {"run": best["id"]}, format="json").status_code == 404
    assert owner.post(f"{URL}{exp_id}/evaluate/", {"run": 10**9}, format="json").status_code == 400
    resp = owner.post(f"{URL}{exp_id}/evaluate/", {"run": best["id"]}, format="json")
    assert resp.status_code == 202, resp.json()
    again = owner.post(f"{URL}{exp_id}/evaluate/", {"run": dummy["id"]}, format="json")
    assert again.status_code == 409 and "already been used" in again.json()["detail"]
    exp = Experiment.objects.get(pk=exp_id)
    job = wait_for_job(exp.evaluation_job_id)
    assert job.status == "succeeded", job.error
    exp.refresh_from_db()
    ev = exp.test_evaluation
    assert ev["metric"] == "f1" and ev["n_test"] == version.split["counts"]["test"]
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        m = ev["metrics"][name]
        assert m["ci_low"] <= m["value"] <= m["ci_high"], name
    assert ev["classes"] == ["benign", "malignant"]
    assert ev["verdict"]["beats_baseline"] is (ev["metrics"]["f1"]["value"] >= 0.6)
    assert "the baseline 0.6" in ev["verdict"]["text"] and "95% CI" in ev["verdict"]["text"]
    assert DatasetVersion.objects.get(pk=version.pk).test_used_at is not None
    assert exp.evaluated_run_id == best["id"] and exp.evaluated_by == team.owner

    # The contract with the registry: the whole pipeline on raw columns.
    run = Run.objects.get(pk=best["id"])
    model = model_load(run.final_artifact_key, run.final_artifact_sha256)
    raw = cancer_frame().head(5)[ev["feature_columns"]]
    assert set(model.predict(raw)) <= {"benign", "malignant"}
    assert model.predict_proba(raw).shape == (5, 2)


def test_regression_flow_and_crashed_trial_is_a_failed_run(regression_team, api, worker, diabetes_version):
    team = regression_team
    search = {
        "method": "grid",
        "n_trials": 3,
        "ensemble_k": 0,
        "spaces": {"decision_tree": {"max_depth": {"type": "categorical", "choices": [2, 3, -1]}}},
    }
    resp = api("editor").post(
        URL,
        {
            "project": team.project.pk,
            "dataset_version": diabetes_version.pk,
            "target": "target",
            "cv_folds": 3,
            "algorithms": ["decision_tree"],
            "search": search,
        },
        format="json",
    )
    assert resp.status_code == 202, resp.json()
    assert resp.json()["metric"] == "rmse" and resp.json()["cv_strategy"] == "kfold"
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded"
    runs = {(r.algorithm, r.params.get("max_depth")): r for r in exp.runs.all()}
    crashed = runs[("decision_tree", -1)]
    assert crashed.status == "failed" and "max_depth" in crashed.error
    assert runs[("decision_tree", 2)].status == "succeeded"
    linear = runs[("linear", None)]
    assert set(linear.cv_metrics) == {"rmse", "mae", "r2", "mape"}
    assert linear.cv_metrics["rmse"]["mean"] < runs[("dummy", None)].cv_metrics["rmse"]["mean"]
    # A duplicate delivery of a finished trial does not train again.
    finished = linear.finished_at
    coordinator.trial_execute(run_id=linear.pk)
    linear.refresh_from_db()
    assert linear.finished_at == finished

    run = api("owner").post(f"/api/v1/runs/{linear.pk}/diagnose/")
    assert run.status_code == 202
    job = wait_for_job(Run.objects.get(pk=linear.pk).diagnostics_job_id)
    assert job.status == "succeeded", job.error
    diag = Run.objects.get(pk=linear.pk).diagnostics
    assert len(diag["residuals"]["predicted"]) == diag["n_val"]
    assert diag["segments"][0]["metric"] == "mae"


def test_cancel_stops_an_experiment(team, api, worker, settings):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    search = {"method": "random", "n_trials": 40, "ensemble_k": 0}
    resp = api("owner").post(URL, body(team, version, algorithms=["svm"], search=search), format="json")
    exp_id = resp.json()["id"]
    assert api("viewer").post(f"{URL}{exp_id}/cancel/").status_code == 403
    deadline = time.monotonic() + 30
    while not Run.objects.filter(experiment_id=exp_id, status="succeeded").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    resp = api("editor").post(f"{URL}{exp_id}/cancel/")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    time.sleep(2)
    exp = Experiment.objects.get(pk=exp_id)
    assert exp.status == "cancelled"
    assert exp.runs.count() < 42
    assert not exp.runs.filter(status__in=["queued", "running"]).exists()
    assert api("editor").post(f"{URL}{exp_id}/cancel/").status_code == 409


@pytest.mark.django_db
def test_reads_are_scoped_to_members(team, api, cancer_version):
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(dataset_version=cancer_version, target="diagnosis", cv_folds=3),
    )
    assert exp.metric == "f1" and exp.algorithms == ["logistic", "random_forest", "hist_gradient_boosting"]
    assert api("viewer").get(f"{URL}{exp.pk}/").status_code == 200
    assert api("outsider").get(f"{URL}{exp.pk}/").status_code == 404
    assert api("outsider").post(f"{URL}{exp.pk}/cancel/").status_code == 404
    assert api("outsider").get(URL).json()["results"] == []
    assert [e["id"] for e in api("viewer").get(URL).json()["results"]] == [exp.pk]
    # Evaluating before training finished is refused and claims nothing.
    run = Run.objects.create(project=team.project, experiment=exp, algorithm="logistic", status="succeeded", score=0.9)
    resp = api("owner").post(f"{URL}{exp.pk}/evaluate/", {"run": run.pk}, format="json")
    assert resp.status_code == 409
    exp.refresh_from_db()
    assert exp.evaluated_run_id is None


def test_tpe_search_runs_its_budget_through_the_coordinator(team, api, worker):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    search = {"method": "tpe", "n_trials": 4, "ensemble_k": 0}
    resp = api("owner").post(URL, body(team, version, algorithms=["logistic", "knn"], search=search), format="json")
    assert resp.status_code == 202, resp.json()
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded"
    candidates = list(exp.runs.filter(kind="candidate"))
    assert len(candidates) == 4
    assert {r.algorithm for r in candidates} == {"logistic", "knn"}
    assert len({r.params["C"] for r in candidates if r.algorithm == "logistic"}) == 2
    assert all(r.status == "succeeded" for r in candidates)
    assert Job.objects.filter(parent_id=exp.job_id, kind="experiment.trial").count() == 6


@pytest.mark.django_db
def test_a_dead_lettered_trial_becomes_a_failed_run(team, cancer_version):
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(
            dataset_version=cancer_version, target="diagnosis", cv_folds=3, algorithms=["logistic"],
            search={"method": "random", "n_trials": 0, "ensemble_k": 0},
        ),
    )  # fmt: skip
    coordinator.experiment_advance(experiment_id=exp.pk)
    runs = list(exp.runs.all())
    assert [r.kind for r in runs] == ["baseline", "baseline"]
    Job.objects.filter(pk__in=[r.job_id for r in runs]).update(status="failed", error="Gave up after 3 attempts")
    assert coordinator.experiment_advance(experiment_id=exp.pk) == "failed"
    assert set(exp.runs.values_list("status", flat=True)) == {"failed"}
    assert "Gave up" in exp.runs.first().error


def test_tune_starts_a_follow_up_on_the_best_algorithm(team, api, worker):
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    search = {"method": "random", "n_trials": 2, "ensemble_k": 0}
    resp = api("owner").post(
        URL, body(team, version, algorithms=["logistic", "naive_bayes"], search=search), format="json"
    )
    parent = wait_experiment(resp.json()["id"])
    assert api("viewer").post(f"{URL}{parent.pk}/tune/", {}, format="json").status_code == 403
    assert api("owner").post(f"{URL}{parent.pk}/tune/", {"n_trials": 0}, format="json").status_code == 400
    resp = api("owner").post(f"{URL}{parent.pk}/tune/", {"n_trials": 3}, format="json")
    assert resp.status_code == 202, resp.json()
    best = next(r for r in parent.runs.order_by("-score") if r.kind == "candidate")
    child = wait_experiment(resp.json()["id"])
    assert child.parent_id == parent.pk and child.algorithms == [best.algorithm]
    assert child.runs.filter(kind="candidate").count() == 3 and child.metric == parent.metric


def test_folds_follow_a_grouped_split(team, api, worker):
    from datasets.services import version_split

    frame = cancer_frame()
    frame["site"] = [f"site-{i % 12}" for i in range(len(frame))]
    version = make_version(team.project, team.owner, frame, "diagnosis", split=False)
    version = version_split(version=version, actor=team.owner, strategy="group", column="site")
    refused = api("owner").post(URL, body(team, version, cv_strategy="stratified"), format="json")
    assert refused.status_code == 400 and "cv_strategy" in refused.json()["errors"]
    resp = api("owner").post(URL, body(team, version, cv_folds=2), format="json")
    assert resp.status_code == 202, resp.json()
    assert resp.json()["cv_strategy"] == "group"
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded", exp.error
    assert not exp.runs.exclude(status="succeeded").exists(), list(exp.runs.values_list("error", flat=True))


@pytest.mark.django_db
def test_a_failed_evaluation_that_never_read_the_test_set_may_be_claimed_again(team, api, cancer_version):
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(dataset_version=cancer_version, target="diagnosis", cv_folds=3),
    )
    Experiment.objects.filter(pk=exp.pk).update(status="succeeded")
    run = Run.objects.create(project=team.project, experiment=exp, algorithm="logistic", status="succeeded", score=0.9)
    url = f"{URL}{exp.pk}/evaluate/"
    assert api("owner").post(url, {"run": run.pk}, format="json").status_code == 202
    assert api("owner").post(url, {"run": run.pk}, format="json").status_code == 409
    exp.refresh_from_db()
    Job.objects.filter(pk=exp.evaluation_job_id).update(status="failed", error="disk full")
    assert api("owner").post(url, {"run": run.pk}, format="json").status_code == 202
    # Once the test rows have been read, never again.
    exp.refresh_from_db()
    Job.objects.filter(pk=exp.evaluation_job_id).update(status="failed")
    DatasetVersion.objects.filter(pk=cancer_version.pk).update(test_used_at="2026-01-01T00:00:00Z")
    assert api("owner").post(url, {"run": run.pk}, format="json").status_code == 409


def test_time_budget_stops_new_trials(team, api, worker, settings):
    settings.EXPERIMENT_PARALLEL_TRIALS = 3
    version = make_version(team.project, team.owner, cancer_frame(), "diagnosis")
    search = {"method": "random", "n_trials": 50, "timeout_seconds": 0.01, "ensemble_k": 0}
    resp = api("owner").post(URL, body(team, version, algorithms=["naive_bayes"], search=search), format="json")
    assert resp.status_code == 202, resp.json()
    exp = wait_experiment(resp.json()["id"])
    assert exp.status == "succeeded"
    # The first advance queues the two baselines and one trial (3 in flight); once the budget
    # is spent nothing new starts.
    assert exp.runs.filter(kind="candidate").count() == 1
    assert exp.runs.count() == 3
