"""Redis and PostgreSQL restarted under a running platform: no queued job is lost, web and
workers recover without restarting themselves.

These restart the machine's shared services: they run in `make test-faults` (marked slow).
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from django.db import connection, transaction

from accounts.services import token_create
from jobs.models import Job, JobStatus
from jobs.runner import job_enqueue, sweep_stale_jobs
from tests.conftest import wait_for_job
from tests.services import restart_postgres, restart_redis

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def _enqueue(team, seconds: float) -> Job:
    with transaction.atomic():
        return job_enqueue(project=team.project, kind="diagnostics.sleep", params={"seconds": seconds})


def test_redis_restart_loses_no_queued_job(worker_process, team):
    worker_process()
    running = _enqueue(team, 3)
    wait_for_job(running.pk, statuses=("running",))
    queued = [_enqueue(team, 0.2) for _ in range(4)]
    restart_redis()  # no persistence: the queued messages are gone
    time.sleep(6)  # older than JOB_REQUEUE_AFTER_SECONDS
    sweep_stale_jobs()  # what beat does every 30 s: republish queued jobs whose message may be lost
    for job in [running, *queued]:
        assert wait_for_job(job.pk, timeout=120).status == JobStatus.SUCCEEDED


def test_postgres_restart_web_and_worker_recover(worker_process, team, live_server):
    worker_process()
    assert wait_for_job(_enqueue(team, 0.2).pk).status == JobStatus.SUCCEEDED
    _, key = token_create(user=team.owner)
    restart_postgres()
    connection.close()  # the test's own connection died with the server

    token = f"Token {key}"
    for _ in range(3):  # the first request after the restart may meet a dead pooled connection
        response = requests.get(f"{live_server.url}/api/v1/projects/", headers={"Authorization": token}, timeout=10)
        if response.status_code == 200:
            break
    assert response.status_code == 200
    job = _enqueue(team, 0.2)
    assert wait_for_job(job.pk, timeout=90).status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_redis_restart_loses_no_prediction_answered(team, live_server):
    """Predictions queued in Redis (not yet drained) when it restarts without persistence, and
    predictions answered while it is down: every 200 is a logged row."""
    from django.test import override_settings

    from deployments.models import Prediction
    from deployments.rollout.services import deployment_create
    from deployments.serving import prediction_log
    from deployments.serving.services import api_key_create
    from tests.deployments.conftest import make_evaluated_run, register_prepared

    team.project.decision = "go"
    team.project.save()
    version = register_prepared(make_evaluated_run(team.project, team.owner), team.owner)
    deployment = deployment_create(project=team.project, actor=team.editor, name="loans", model_version=version)
    _, key = api_key_create(deployment=deployment, actor=team.editor, name="app")
    url = f"{live_server.url}/api/v1/deployments/{deployment.pk}/predict/"
    instance = {"age": 40, "income": 61000.5, "score": 0.7, "color": "red", "member": True}
    answered: list[str] = []

    def call(n: int) -> None:
        with requests.Session() as s:
            for k in range(n):
                r = s.post(
                    url, json={"instances": [{**instance, "age": 20 + k}]}, headers={"Authorization": f"Api-Key {key}"}
                )
                assert r.status_code == 200, r.text
                answered.append(r.json()["predictions"][0]["id"])

    # A slow drainer (every 5 s): the first calls are still in Redis when it goes.
    with override_settings(PREDICTION_LOG_QUEUE=True, PREDICTION_LOG_FLUSH_MS=5000):
        call(30)
        assert prediction_log.pending() >= 1
        restart_redis()  # no persistence: the queue is gone
        call(30)
        assert wait_for_rows(Prediction, deployment, len(answered))
        prediction_log.flush()
    logged = {str(i) for i in Prediction.objects.filter(deployment=deployment).values_list("id", flat=True)}
    assert logged == set(answered)
    # The features went to the columnar store through the same hand-off: every answered
    # prediction's row is in exactly one segment (or, held for review, still in PostgreSQL).
    from django.core.files.storage import default_storage

    from deployments import prediction_store
    from deployments.ml import columnar

    table = columnar.read_tables(
        default_storage, prediction_store.window_segments(deployment, None, None), [columnar.ID, "age"]
    )
    in_segments = [str(uuid.UUID(bytes=b)) for b in table.column(columnar.ID).to_pylist()]
    in_json = {
        str(i)
        for i in Prediction.objects.filter(deployment=deployment, inputs__isnull=False).values_list("id", flat=True)
    }
    assert len(in_segments) == len(set(in_segments))  # nothing written twice
    assert set(in_segments) | in_json == set(answered) and not set(in_segments) & in_json
    assert len(in_segments) > 0  # the columnar path was taken


def wait_for_rows(model, deployment, n: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if model.objects.filter(deployment=deployment).count() >= n:
            return True
        time.sleep(0.2)
    return False
