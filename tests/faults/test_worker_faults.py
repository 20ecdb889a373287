"""Real worker processes killed with SIGKILL: no job is lost, none stays running."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import transaction

from jobs.models import Job, JobStatus
from jobs.runner import job_enqueue, sweep_stale_jobs
from tests.conftest import wait_for_job

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def _enqueue(team, kind="diagnostics.sleep", **params):
    with transaction.atomic():
        return job_enqueue(project=team.project, kind=kind, created_by=team.owner, params=params)


def test_killed_worker_child_job_is_redelivered_and_completes(worker_process, team):
    w = worker_process()
    job = _enqueue(team, seconds=6)
    wait_for_job(job.pk, timeout=60, statuses=("running",))
    time.sleep(1)
    children = w.children()
    assert children, "the prefork worker should have a child process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    job = wait_for_job(job.pk, timeout=90)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.result["attempt"] == 2


def test_killed_whole_worker_job_completes_after_restart(worker_process, team):
    w = worker_process()
    job = _enqueue(team, seconds=5)
    wait_for_job(job.pk, timeout=60, statuses=("running",))
    w.stop(signal.SIGKILL)
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    time.sleep(9)  # the heartbeat goes stale (JOB_STALE_AFTER_SECONDS=4, sweep waits twice that)
    swept = sweep_stale_jobs()
    stuck = Job.objects.get(pk=job.pk)
    assert swept["requeued"] == 1, (swept, stuck.status, stuck.heartbeat_at, stuck.attempts)
    worker_process()
    job = wait_for_job(job.pk, timeout=90)
    assert job.status == JobStatus.SUCCEEDED
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()


def test_poison_job_is_dead_lettered(worker_process, team):
    worker_process()
    job = _enqueue(team, kind="diagnostics.exit")
    job = wait_for_job(job.pk, timeout=120)
    assert job.status == JobStatus.FAILED
    assert "Gave up after 3 attempts" in job.error
    assert job.attempts == 4  # three that died, and the claim that dead-lettered it
