"""External runs: a LightGBM pipeline trained client-side, checked, stored by us, on the leaderboard,
evaluated once by the platform on the locked test set; hostile files refused with nothing stored."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.files.storage import default_storage
from django.test import Client
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from deployments.models import ModelVersion
from experiments import services
from experiments.models import Experiment, Run
from projects.models import AuditEvent
from tests.conftest import wait_for_job
from tests.experiments.conftest import cancer_frame, make_version
from tests.experiments.test_api import wait_experiment

pytestmark = pytest.mark.django_db
META = ["_row_id", "_split"]


def train_export(api, version) -> pd.DataFrame:
    """What a client downloads: the train part (the test rows never leave the server)."""
    resp = api("editor").get(f"/api/v1/dataset-versions/{version.pk}/export/?split=train&format=parquet")
    assert resp.status_code == 200, resp.content[:300]
    content = b"".join(resp.streaming_content) if resp.streaming else resp.content
    frame = pd.read_parquet(io.BytesIO(content))
    assert len(frame) == 144  # 60% of 240 rows: the train part only
    return frame.drop(columns=[c for c in META if c in frame.columns])


def lightgbm_pipeline(frame: pd.DataFrame, target: str = "diagnosis", model=None) -> Pipeline:
    X, y = frame.drop(columns=[target]), frame[target]
    numeric = [c for c in X.columns if c != "clinic"]
    prep = ColumnTransformer(
        [("num", "passthrough", numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), ["clinic"])]
    )
    model = model or LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1, random_state=0)
    return Pipeline([("prep", prep), ("model", model)]).fit(X, y)


def experiment_for(team, version, **search) -> Experiment:
    config = services.ExperimentConfig(
        dataset_version=version,
        target="diagnosis",
        algorithms=["decision_tree"],
        search={"method": "random", "n_trials": 1, "ensemble_k": 0, **search},
    )
    return services.experiment_create(project=team.project, created_by=team.owner, config=config)


def post_run(client, experiment, data: bytes, *, filename="model.skops", **fields):
    form = {
        "algorithm": "lightgbm",
        "name": "notebook LightGBM",
        "params": json.dumps({"n_estimators": 30, "num_leaves": 8}),
        "cv_metrics": json.dumps({"f1": {"mean": 0.93, "std": 0.02}, "roc_auc": 0.97}),
        **fields,
    }
    form["model"] = io.BytesIO(data)
    form["model"].name = filename
    return client.post(f"/api/v1/experiments/{experiment.pk}/runs/external/", form, format="multipart")


def stored_models(project) -> list[str]:
    where = f"projects/{project.pk}/models"
    try:
        return sorted(default_storage.listdir(where)[1])
    except FileNotFoundError:
        return []


@pytest.fixture
def setup(team, api, cancer_version):
    experiment = experiment_for(team, cancer_version)
    model = lightgbm_pipeline(train_export(api, cancer_version))
    return experiment, model


def test_a_lightgbm_pipeline_is_checked_scored_on_validation_and_stored_by_us(team, api, setup):
    experiment, model = setup
    resp = post_run(api("editor"), experiment, sio.dumps(model))
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert resp["Location"] == f"/api/v1/runs/{body['id']}/"
    assert body["kind"] == "external" and body["algorithm"] == "lightgbm" and body["status"] == "succeeded"
    assert body["cv_metrics"]["f1"] == {"mean": 0.93, "std": 0.02}
    assert body["cv_metrics"]["roc_auc"] == {"mean": 0.97, "std": None}
    assert body["score"] == 0.93  # the experiment's metric, as claimed
    ext = body["external"]
    assert ext["name"] == "notebook LightGBM" and ext["logged_by"] == "eddie"
    # The platform's own scores on the validation rows, next to the claim.
    assert ext["n_validation"] == 48 and 0.5 < ext["validation_metrics"]["roc_auc"] <= 1.0
    run = Run.objects.get(pk=body["id"])
    assert run.params == {"n_estimators": 30, "num_leaves": 8}
    from mlplatform.artifacts import model_load

    loaded = model_load(run.artifact_key, run.artifact_sha256)  # written by model_save: hash recorded
    X = cancer_frame().drop(columns=["diagnosis"]).head(20)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert AuditEvent.objects.filter(action="run.external_logged", object_id=str(run.pk)).exists()
    board = api("viewer").get(f"/api/v1/experiments/{experiment.pk}/").json()["runs"]
    assert [r["id"] for r in board if r["kind"] == "external"] == [run.pk]
    listed = api("viewer").get(f"/api/v1/runs/?experiment={experiment.pk}&algorithm=lightgbm").json()
    assert [r["id"] for r in listed["results"]] == [run.pk]
    # Not refit by the platform: no diagnostics.
    assert api("editor").post(f"/api/v1/runs/{run.pk}/diagnose/").status_code == 409
    browser = Client()
    browser.force_login(team.viewer)
    page = browser.get(f"/experiments/{experiment.pk}/").content.decode()
    assert f'data-run-id="{run.pk}" data-status="succeeded" data-kind="external"' in page and ">external</span>" in page
    assert browser.get(f"/runs/{run.pk}/").status_code == 200
    # A claimed score is not a measurement: never the default choice, and evaluating it warns.
    from experiments.selectors import best_candidate, evaluation_warnings

    assert best_candidate(experiment) is None  # the only finished run is the external one
    (warning,) = evaluation_warnings(experiment, run)
    assert "uploader's claim" in warning and "measured" in warning


def _refused(resp, field: str, *words: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.content[:500]
    body = resp.json()
    assert field in body["errors"], body
    message = " ".join(body["errors"][field])
    for word in words:
        assert word in message, message


class Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_hostile_files_are_refused_naming_the_field_and_nothing_is_stored(team, api, setup, tmp_path, settings):
    experiment, model = setup
    client = api("editor")
    before = stored_models(team.project)
    marker = tmp_path / "pwned"
    pickled = pickle.dumps(Payload(str(marker)))
    _refused(post_run(client, experiment, pickled, filename="model.pkl"), "model", "never loaded", "skops")
    _refused(post_run(client, experiment, pickled, filename="model.joblib"), "model", "never loaded")
    _refused(post_run(client, experiment, pickled, filename="model.skops"), "model", "never loaded")  # renamed
    assert not marker.exists()
    hooked = sio.dumps({"model": model, "hook": os.system})
    _refused(post_run(client, experiment, hooked), "model", "allowlist", "system")
    _refused(post_run(client, experiment, b"not a zip at all"), "model", "skops file")
    # Fitted on other columns (a renamed one): refused before scoring, the columns named.
    frame = train_export(api, experiment.dataset_version).rename(columns={"radius": "r"})
    _refused(post_run(client, experiment, sio.dumps(lightgbm_pipeline(frame))), "model", "'r'", "'radius'")
    # Not fitted, or not a model.
    unfitted = Pipeline([("model", LogisticRegression())])
    _refused(post_run(client, experiment, sio.dumps(unfitted)), "model", "not fitted")
    _refused(post_run(client, experiment, sio.dumps({"weights": np.zeros(3)})), "model", "not a scikit-learn")
    # A regressor for a classification target: its "classes" are not the target's.
    train = train_export(api, experiment.dataset_version)
    train["diagnosis"] = (train["diagnosis"] == "benign").astype(float)
    regressor = lightgbm_pipeline(train, model=LGBMRegressor(n_estimators=5, verbose=-1))
    _refused(post_run(client, experiment, sio.dumps(regressor)), "model", "classes")
    # Huge: over the size limit (413, like every upload over its limit), and a zip that unpacks to too much.
    settings.EXTERNAL_MODEL_MAX_BYTES = 2_000
    _refused(post_run(client, experiment, sio.dumps(model)), "model", "limit", status=413)
    settings.EXTERNAL_MODEL_MAX_BYTES = 100 * 1024**2
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", b"{" + b" " * 30_000_000 + b"}")
    settings.EXTERNAL_MODEL_MAX_UNPACKED_BYTES = 10_000_000
    _refused(post_run(client, experiment, bomb.getvalue()), "model", "unpacks", status=413)
    assert not Run.objects.filter(kind="external").exists()
    assert stored_models(team.project) == before
    assert not AuditEvent.objects.filter(action="run.external_logged").exists()


def test_bad_fields_are_refused_naming_them(api, setup):
    experiment, model = setup
    client, data = api("editor"), sio.dumps(model)
    _refused(post_run(client, experiment, data, cv_metrics='{"rmse": 3}'), "cv_metrics", "'rmse'", "roc_auc")
    _refused(post_run(client, experiment, data, cv_metrics='{"roc_auc": 0.9}'), "cv_metrics", "'f1'")
    _refused(post_run(client, experiment, data, cv_metrics='{"f1": "high"}'), "cv_metrics", "finite number")
    _refused(post_run(client, experiment, data, cv_metrics='{"f1": {"mean": 0.9, "std": -1}}'), "cv_metrics")
    _refused(post_run(client, experiment, data, cv_metrics="{f1: 0.9"), "cv_metrics", "valid JSON")
    _refused(post_run(client, experiment, data, params="[1, 2]"), "params", "JSON object")
    _refused(post_run(client, experiment, data, algorithm=""), "algorithm")
    resp = client.post(f"/api/v1/experiments/{experiment.pk}/runs/external/", {"algorithm": "x"}, format="multipart")
    _refused(resp, "model")
    assert not Run.objects.filter(kind="external").exists()


def test_outsider_gets_404_viewer_and_reviewer_403(team, api, setup):
    experiment, model = setup
    data = sio.dumps(model)
    assert post_run(api("outsider"), experiment, data).status_code == 404
    assert post_run(api("viewer"), experiment, data).status_code == 403
    assert post_run(api("reviewer"), experiment, data).status_code == 403
    foreign = make_version(team.other_project, team.outsider, cancer_frame(), "diagnosis")
    theirs = services.experiment_create(
        project=team.other_project,
        created_by=team.outsider,
        config=services.ExperimentConfig(dataset_version=foreign, target="diagnosis", algorithms=["decision_tree"]),
    )
    assert post_run(api("owner"), theirs, data).status_code == 404
    assert not Run.objects.filter(kind="external").exists()


@pytest.mark.worker
def test_the_platform_evaluates_the_external_run_once_on_the_locked_test_set(team, api, worker, cancer_version):
    experiment = experiment_for(team, cancer_version)
    assert wait_experiment(experiment.pk).status == "succeeded"
    model = lightgbm_pipeline(train_export(api, cancer_version))
    run_id = post_run(api("editor"), experiment, sio.dumps(model)).json()["id"]
    resp = api("editor").post(f"/api/v1/experiments/{experiment.pk}/evaluate/", {"run": run_id}, format="json")
    assert resp.status_code == 202
    assert wait_for_job(resp.json()["job_id"]).status == "succeeded"
    experiment.refresh_from_db()
    ev = experiment.test_evaluation
    assert ev["run"] == run_id and ev["external"] is True and ev["n_fit"] is None and ev["n_test"] == 48
    assert 0.5 < ev["metrics"]["roc_auc"]["value"] <= 1.0 and ev["metrics"]["roc_auc"]["ci_low"] is not None
    # The calibration verdict is read with the test set, once (monitoring's estimate states it).
    cal = ev["calibration"]
    assert cal["n"] == 48 and cal["source"] == "locked test set" and cal["status"] in ("calibrated", "miscalibrated")
    assert cal["ece_ci_low"] is not None and 0 <= cal["ece"] <= 1
    run = Run.objects.get(pk=run_id)
    # Evaluated as uploaded: the final model is the uploaded one (the same hashed file), ready to register.
    assert (run.final_artifact_key, run.final_artifact_sha256) == (run.artifact_key, run.artifact_sha256)
    reg = api("editor").post(f"/api/v1/runs/{run_id}/register/")
    assert reg.status_code == 202, reg.json()
    assert wait_for_job(reg.json()["job_id"]).status == "succeeded"
    assert ModelVersion.objects.get(run_id=run_id).metrics["calibration"]["ece"] == cal["ece"]


def test_a_regression_run_is_scored_by_the_platform_too(regression_team, api, diabetes_version):
    team = regression_team
    config = services.ExperimentConfig(
        dataset_version=diabetes_version,
        target="target",
        algorithms=["ridge"],
        search={"method": "random", "n_trials": 1, "ensemble_k": 0},
    )
    experiment = services.experiment_create(project=team.project, created_by=team.owner, config=config)
    assert experiment.metric == "rmse"
    resp = api("editor").get(f"/api/v1/dataset-versions/{diabetes_version.pk}/export/?split=train&format=parquet")
    content = b"".join(resp.streaming_content) if resp.streaming else resp.content
    train = pd.read_parquet(io.BytesIO(content)).drop(columns=META, errors="ignore")
    X, y = train.drop(columns=["target"]), train["target"]
    prep = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["sex"])], remainder="passthrough")
    model = Pipeline([("prep", prep), ("model", LGBMRegressor(n_estimators=40, verbose=-1))]).fit(X, y)
    wrong = post_run(
        api("editor"), experiment, sio.dumps(model)
    )  # the form's default claims f1: a classification metric
    _refused(wrong, "cv_metrics", "'f1'", "rmse")
    resp = post_run(api("editor"), experiment, sio.dumps(model), cv_metrics='{"rmse": 58.0, "r2": 0.4}')
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["score"] == 58.0 and body["cv_metrics"]["r2"] == {"mean": 0.4, "std": None}
    platform = body["external"]["validation_metrics"]
    assert 20 < platform["rmse"] < 120 and set(platform) >= {"rmse", "mae", "r2"}
