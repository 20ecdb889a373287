"""The Python client (clients/python) against the live server and a real Celery worker."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlplatform_client as mlp
import pytest

from accounts.services import token_create
from mlplatform.version import API_VERSION
from tests.clients import byom_script, loop_script

ROOT = Path(__file__).resolve().parents[2]


def client_for(live_server, user) -> mlp.Client:
    _, key = token_create(user=user)
    return mlp.Client(live_server.url, token=key, backoff=0.05)


@pytest.mark.worker
def test_the_whole_loop_in_about_30_lines_without_a_sleep_loop(live_server, worker, team, tmp_path, capsys):
    _, token = token_create(user=team.owner)
    out = loop_script.main(live_server.url, token, str(tmp_path / "cancer.csv"))
    printed = capsys.readouterr()
    assert "%] experiment.train" in printed.err  # the progress lines of wait(progress=True)

    experiment, deployment, predictions = out["experiment"], out["deployment"], out["predictions"]
    assert experiment.status == "succeeded"
    board = experiment.leaderboard()
    assert {"dummy", "logistic", "random_forest"} <= set(board["algorithm"])
    assert board["roc_auc"].iloc[0] == board["roc_auc"].max()
    assert experiment.data["test_evaluation"]["verdict"]["text"]
    project = out["project"]
    version = project.dataset("cancer").latest()
    assert len(predictions) == version.data["split"]["counts"]["validation"]
    assert set(predictions["prediction"]) <= {"benign", "malignant"}
    assert {"confidence", "status", "id", "proba_benign", "proba_malignant"} <= set(predictions.columns)
    assert predictions.index.name == "row_id"  # same index as the frame sent
    monitoring = deployment.monitoring()
    assert monitoring["latest"]["performance"]["n_labels"] == len(predictions)  # the feedback counted
    assert not deployment.reviews(status="pending")  # every held prediction was decided

    # Errors are typed and carry the server's field messages.
    with pytest.raises(mlp.Conflict):
        experiment.evaluate(experiment.best_run())  # the test set is looked at once
    with pytest.raises(mlp.ValidationError) as bad:
        project.train(version, "no_such_column")
    assert "target" in bad.value.errors and "no_such_column" in bad.value.errors["target"][0]
    with pytest.raises(mlp.PermissionDenied) as locked:
        version.rows(split="test")
    assert "locked" in str(locked.value)


@pytest.mark.worker
def test_roles_and_outsiders_get_typed_errors(live_server, worker, team):
    owner = client_for(live_server, team.owner)
    project = owner.projects.get(team.project.pk)
    import pandas as pd

    frame = pd.DataFrame({"x": range(30), "y": ["a", "b", "c"] * 10})
    version = project.upload(frame, "small")
    assert version.status == "ready" and version.data["row_count"] == 30
    viewer = client_for(live_server, team.viewer)
    with pytest.raises(mlp.PermissionDenied):
        viewer.versions.get(version.id).split("random")
    with pytest.raises(mlp.NotFound):
        client_for(live_server, team.outsider).versions.get(version.id)
    with pytest.raises(mlp.ValidationError) as bad:
        version.split("magic")
    assert bad.value.errors["strategy"] == ["'magic' is not valid: use random, stratified, group or time."]
    rows = viewer.versions.get(version.id).rows(page_size=7)  # five pages through their cursors
    assert list(rows.index) == list(range(30)) and list(rows["x"]) == list(range(30))
    job = version.split("random", seed=3).last_job
    assert job.status == "succeeded" and viewer.jobs.get(job.id).own_status == "succeeded"
    events = list(viewer.jobs.get(job.id).events())  # server-sent events of a finished job: its state, then end
    assert [e["event"] for e in events] == ["progress", "end"] and events[-1]["data"]["status"] == "succeeded"
    assert [j.id for j in viewer.jobs.list(project=team.project.pk, kind="dataset.split")] == [job.id]


def test_readme_shows_the_tested_script_verbatim():
    script = (ROOT / "tests" / "clients" / "loop_script.py").read_text()
    body = script[script.index("from mlplatform_client") :]
    assert f"```python\n{body}```" in (ROOT / "README.md").read_text()
    assert len([line for line in body.splitlines() if line.strip()]) <= 32  # "about 30 lines"
    byom = (ROOT / "tests" / "clients" / "byom_script.py").read_text()
    assert f"```python\n{byom[byom.index('from lightgbm') :]}```" in (ROOT / "README.md").read_text()


@pytest.mark.worker
def test_bring_your_own_lightgbm_model_evaluated_and_served_by_the_platform(live_server, worker, team, capsys):
    from sklearn.datasets import load_breast_cancer

    owner = client_for(live_server, team.owner)
    goal = {"success_metric": "roc_auc", "success_threshold": 0.9, "baseline_score": 0.5, "decision": "go"}
    project = owner.projects.create("Tumours", "classification", decision_rationale="Scans wait", **goal)
    data = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    data["diagnosis"] = data["diagnosis"].map({0: "malignant", 1: "benign"})
    version = project.upload(data, "cancer").set_target("diagnosis").split("stratified", column="diagnosis")
    search = {"method": "random", "n_trials": 1, "ensemble_k": 0}
    experiment = project.train(version, "diagnosis", algorithms=["decision_tree"], search=search).wait()
    _, token = token_create(user=team.owner)
    out = byom_script.main(live_server.url, token, experiment.id)
    run, predictions = out["run"], out["predictions"]
    assert run.kind == "external" and run.algorithm == "lightgbm" and run.status == "succeeded"
    assert run.params["n_estimators"] == 50  # the final estimator's plain parameters, by default
    assert 0.9 < run.external["validation_metrics"]["roc_auc"] <= 1.0
    board = out["experiment"].leaderboard()
    assert board.loc[run.id, "kind"] == "external"
    ev = out["experiment"].data["test_evaluation"]
    assert ev["run"] == run.id and ev["external"] is True and ev["metrics"]["roc_auc"]["value"] > 0.9
    assert len(predictions) == version.data["split"]["counts"]["validation"]
    assert set(predictions["prediction"]) <= {"benign", "malignant"}
    assert "proba_benign" in predictions.columns
    printed = capsys.readouterr().out
    assert "clears the success threshold 0.9: ROC AUC" in printed  # the verdict on the locked test set
    with pytest.raises(mlp.ValidationError) as bad:  # errors carry the field
        out["experiment"].log_run(b"\x80\x04not a model", algorithm="lightgbm", cv_metrics={"roc_auc": 0.9})
    assert "never loaded" in bad.value.errors["model"][0]
    with pytest.raises(mlp.ValidationError) as no_retrain:  # the platform cannot retrain what it did not train
        out["deployment"].retrain()
    assert "external run" in no_retrain.value.errors["deployment"][0]
    project.add_member(team.viewer.username, "viewer")
    with pytest.raises(mlp.PermissionDenied):
        client_for(live_server, team.viewer).experiments.get(experiment.id).log_run(
            b"x", algorithm="lightgbm", cv_metrics={"roc_auc": 0.9}
        )


def test_client_version_is_the_api_version(client, db):
    assert mlp.__version__ == API_VERSION == client.get("/api/v1/version/").json()["api_version"]
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["info"]["version"] == API_VERSION


class _Flaky(http.server.BaseHTTPRequestHandler):
    """A server that refuses the first calls (429, then 503) before answering: the client's
    retry logic against real HTTP, no server code involved."""

    script: list[tuple[int, dict]] = []
    seen: list[float] = []

    def do_GET(self):
        self.seen.append(time.monotonic())
        status, headers = self.script.pop(0) if self.script else (200, {})
        body = json.dumps({"detail": "slow down", "code": "throttled"} if status >= 400 else {"ok": True}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return None


@pytest.fixture
def flaky():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.seen = []
    yield server
    server.shutdown()


def test_retries_honour_retry_after_then_give_up_with_a_typed_error(flaky):
    url = f"http://127.0.0.1:{flaky.server_port}"
    _Flaky.script = [(429, {"Retry-After": "0.4"}), (503, {})]
    assert mlp.Client(url, backoff=0.05).http.get("/x") == {"ok": True}
    gaps = [b - a for a, b in zip(_Flaky.seen, _Flaky.seen[1:], strict=False)]
    assert len(_Flaky.seen) == 3 and gaps[0] >= 0.35  # waited as the server asked
    _Flaky.script = [(429, {"Retry-After": "7"})] * 3
    with pytest.raises(mlp.RateLimited) as refused:
        mlp.Client(url, retries=0).http.get("/x")
    assert refused.value.retry_after == 7 and refused.value.status_code == 429


def test_the_package_installs_with_pip(tmp_path):
    import shutil

    source = tmp_path / "src"  # a copy: building leaves build/ and egg-info beside the sources
    shutil.copytree(ROOT / "clients" / "python", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    probe = "import mlplatform_client, sys; print(mlplatform_client.__version__, mlplatform_client.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(target)}, capture_output=True, text=True)
    version, path = out.stdout.split()
    assert version == API_VERSION and path.startswith(str(target))
