"""Redis and PostgreSQL restarted under a running platform: no queued job is lost, web and
workers recover without restarting themselves.

These restart the machine's shared services: they run in `make test-faults` (marked slow).
"""

from __future__ import annotations

import time

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
