"""Several machines: web (gunicorn), two Celery workers and beat as separate processes, each
with its own data and temporary directory, sharing only PostgreSQL, Redis and the S3 bucket.
The whole loop over HTTP; one worker is killed with SIGKILL while the experiment trains and
the other finishes it (beat's sweep re-queues the dead worker's trial)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlplatform_client as mlp
import numpy as np
import pandas as pd
import pytest
import requests
from django.conf import settings
from django.db import connection
from sklearn.datasets import make_classification

from accounts.services import token_create
from tests.conftest import ROOT, WorkerProcess, _die_with_parent, _purge_queues
from tests.objectstore import free_port

pytestmark = [pytest.mark.slow, pytest.mark.worker]

SWEEP_ENV = {"JOB_SWEEP_SECONDS": "2", "JOB_HEARTBEAT_SECONDS": "1", "JOB_STALE_AFTER_SECONDS": "3"}


class Machine:
    """One 'machine': its own MLPLATFORM_DATA_DIR and TMPDIR; shared services from the env."""

    def __init__(self, name: str, base: Path, shared: dict[str, str]):
        self.name = name
        self.dir = base / name
        (self.dir / "tmp").mkdir(parents=True)
        self.env = {**shared, "MLPLATFORM_DATA_DIR": str(self.dir), "TMPDIR": str(self.dir / "tmp")}
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> Machine:
        log = open(self.dir / "process.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def local_files(self) -> list[str]:
        media = self.dir / "media"
        return [str(p) for p in media.rglob("*") if p.is_file()] if media.exists() else []


@pytest.fixture
def cluster(transactional_db, s3_server, tmp_path):
    """web + worker A + worker B + beat; yields (base URL, machines, bucket)."""
    _purge_queues()
    bucket = s3_server.create_bucket()
    db = connection.settings_dict
    shared = {
        **s3_server.env(bucket),
        **SWEEP_ENV,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "PREDICTION_LOG_QUEUE": "0",
        "LOG_LEVEL": "WARNING",
    }
    machines = {name: Machine(name, tmp_path, shared) for name in ("web", "worker-a", "worker-b", "beat")}
    port = free_port()
    gunicorn = [
        "-m", "gunicorn", "mlplatform.wsgi", "-w", "2", "-k", "gthread", "--threads", "4",
        "-b", f"127.0.0.1:{port}", "--log-level", "warning",
    ]  # fmt: skip
    machines["web"].start(*gunicorn)
    workers = {}
    for name in ("worker-a", "worker-b"):
        w = WorkerProcess(extra_env=machines[name].env)
        w.cmd[w.cmd.index("-n") + 1] = f"{name}-{os.getpid()}@%h"
        workers[name] = w.start()
        machines[name].proc = w.proc
    beat = machines["beat"]
    beat.start("-m", "celery", "-A", "mlplatform", "beat", "-s", str(beat.dir / "celerybeat-schedule"), "-l", "WARNING")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/login/", timeout=10).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, (machines["web"].dir / "process.log").read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield url, machines, bucket
    finally:
        for w in workers.values():
            w.stop(signal.SIGKILL)
        for m in machines.values():
            m.stop()
        _purge_queues()  # the killed worker's message too (tests/conftest.py)


def _frame(rows: int = 2500) -> pd.DataFrame:
    X, y = make_classification(n_samples=rows, n_features=12, n_informative=6, random_state=3)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


def test_the_loop_across_machines_survives_a_killed_worker(cluster, team, s3_server, tmp_path):
    from jobs.models import Job

    url, machines, bucket = cluster
    _, token = token_create(user=team.owner)
    client = mlp.Client(url, token=token, backoff=0.1)
    goal = {"success_metric": "roc_auc", "success_threshold": 0.7, "baseline_score": 0.5, "decision": "go"}
    project = client.projects.create("Fleet", "classification", decision_rationale="Several machines", **goal)
    frame = _frame()
    version = project.upload(frame, "generated")  # web stores it, a worker reads it: only via S3
    assert version.status == "ready", version.data
    version = version.set_target("label").split("stratified", column="label", seed=1)
    space = {"n_estimators": {"type": "categorical", "choices": [150, 200, 250]}}
    search = {"method": "random", "n_trials": 4, "ensemble_k": 0, "spaces": {"random_forest": space}}
    experiment = project.train(version, "label", algorithms=["random_forest"], search=search)

    # Both workers busy with a trial each: kill worker A (the whole machine, SIGKILL).
    deadline = time.monotonic() + 90
    while True:
        running = list(Job.objects.filter(kind="experiment.trial", status="running").values_list("pk", flat=True))
        if len(running) >= 2:
            break
        assert time.monotonic() < deadline, "two trials never ran at once"
        time.sleep(0.05)
    os.killpg(machines["worker-a"].proc.pid, signal.SIGKILL)
    machines["worker-a"].proc.wait()
    killed_at = time.monotonic()

    experiment.wait(timeout=150)
    assert experiment.status == "succeeded", experiment.data
    retried = Job.objects.filter(pk__in=running, attempts__gte=2)
    assert retried.exists(), list(Job.objects.filter(pk__in=running).values("pk", "status", "attempts", "message"))
    assert all(j.status == "succeeded" for j in Job.objects.filter(pk__in=running))
    recovered_s = time.monotonic() - killed_at
    print(f"experiment finished {recovered_s:.1f} s after worker A was killed")

    best = experiment.best_run()
    experiment.evaluate(best)
    model = best.register()
    deployment = model.deploy("fleet")
    incoming = frame.drop(columns=["label"]).head(40)
    predictions = deployment.predict(incoming)
    assert len(predictions) == 40 and set(predictions["prediction"]) <= {"yes", "no"}
    scored = deployment.batch(incoming, log_predictions=False)
    assert len(scored) == 40
    path = model.download(str(tmp_path / "model.skops"))
    assert Path(path).stat().st_size > 0

    keys = s3_server.keys(bucket)
    assert any(k.endswith(".skops") for k in keys) and any(k.endswith(".parquet") for k in keys)
    for machine in machines.values():
        assert machine.local_files() == [], machine.name  # nothing shared through a local disk
