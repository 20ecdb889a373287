from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobStatus
from jobs.runner import execute, job_enqueue, publish, sweep_stale_jobs
from tests.conftest import wait_for_job


def unpublished(team, **params) -> Job:
    """A queued job no worker will pick up: for tests that drive `execute` themselves."""
    return Job.objects.create(project=team.project, kind="diagnostics.sleep", params=params, enqueued_at=timezone.now())


def enqueue(team, **params) -> Job:
    with transaction.atomic():
        return job_enqueue(project=team.project, kind="diagnostics.sleep", created_by=team.owner, params=params)


@pytest.mark.worker
def test_job_runs_on_worker_with_progress(worker, team, api):
    job = enqueue(team, seconds=0.5)
    assert job.status == JobStatus.QUEUED
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.progress == 100
    assert job.attempts == 1
    assert job.result["slept"] == 0.5
    assert job.started_at and job.finished_at
    body = api("viewer").get(f"/api/v1/jobs/{job.pk}/").data
    assert body["status"] == "succeeded" and body["progress"] == 100


@pytest.mark.worker
def test_failed_job_records_error_and_traceback_for_owner_only(worker, team, api):
    job = wait_for_job(enqueue(team, seconds=0.1, fail="disk on fire").pk)
    assert job.status == JobStatus.FAILED
    assert job.error == "disk on fire"
    assert "ValueError" in job.traceback
    assert api("owner").get(f"/api/v1/jobs/{job.pk}/").data["traceback"]
    assert api("editor").get(f"/api/v1/jobs/{job.pk}/").data["traceback"] is None


@pytest.mark.worker
def test_same_task_delivered_twice_runs_once(worker, team):
    job = enqueue(team, seconds=1)
    publish(job.pk, "default")  # a second delivery of the same job
    publish(job.pk, "default")
    job = wait_for_job(job.pk)
    assert job.status == JobStatus.SUCCEEDED
    time.sleep(1.5)  # let the duplicates be processed
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.status == JobStatus.SUCCEEDED


@pytest.mark.worker
def test_cancel_running_job(worker, team, api):
    job = enqueue(team, seconds=20)
    wait_for_job(job.pk, statuses=("running",))
    response = api("editor").post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200
    job = wait_for_job(job.pk, timeout=10)
    assert job.status == JobStatus.CANCELLED


def test_cancel_queued_job_never_runs(transactional_db, team, api):
    # Created without publishing: no worker may pick it up before the cancel.
    job = Job.objects.create(project=team.project, kind="diagnostics.sleep", params={"seconds": 1})
    assert api("owner").post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert execute(job.pk) == "done"
    job.refresh_from_db()
    assert job.attempts == 0


@pytest.mark.worker
def test_rolled_back_transaction_queues_nothing(worker, team):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        job_id = job_enqueue(project=team.project, kind="diagnostics.sleep", params={"seconds": 0}).pk
        raise Boom()
    assert not Job.objects.filter(pk=job_id).exists()
    # and a job queued afterwards runs normally, so the worker was alive all along
    assert wait_for_job(enqueue(team, seconds=0).pk).status == JobStatus.SUCCEEDED


def test_execute_claims_once(transactional_db, team):
    job = unpublished(team, seconds=0)
    assert execute(job.pk) == "ran"
    assert execute(job.pk) == "done"
    job.refresh_from_db()
    assert job.attempts == 1


def test_running_job_with_live_heartbeat_is_busy(transactional_db, team):
    job = unpublished(team, seconds=0)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1)
    assert execute(job.pk) == "busy"


def test_stale_running_job_is_reclaimed(transactional_db, team):
    job = unpublished(team, seconds=0)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5), attempts=1
    )
    assert execute(job.pk) == "ran"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2


def test_job_beyond_max_attempts_is_dead_lettered(transactional_db, team):
    job = unpublished(team, seconds=0)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5), attempts=3
    )
    execute(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Gave up after 3 attempts" in job.error


def test_sweep_fails_or_requeues_silent_jobs(transactional_db, team):
    old = timezone.now() - timedelta(minutes=5)
    spent = unpublished(team, seconds=0)
    Job.objects.filter(pk=spent.pk).update(status=JobStatus.RUNNING, heartbeat_at=old, attempts=3)
    retry = unpublished(team, seconds=0)
    Job.objects.filter(pk=retry.pk).update(status=JobStatus.RUNNING, heartbeat_at=old, attempts=1)
    result = sweep_stale_jobs()
    assert result["failed"] == 1 and result["requeued"] == 1
    spent.refresh_from_db()
    retry.refresh_from_db()
    assert spent.status == JobStatus.FAILED and "stopped answering" in spent.error
    # Requeued and republished: a worker left running by an earlier test may already have it.
    assert retry.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    assert retry.status != JobStatus.RUNNING or retry.heartbeat_at > old


def test_job_api_access(api, team, db):
    job = Job.objects.create(project=team.project, kind="diagnostics.sleep", params={"seconds": 1})
    assert api("outsider").get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert api("outsider").post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 404
    assert api("viewer").post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 403
    assert api("reviewer").post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and not job.cancel_requested
    listing = api("outsider").get("/api/v1/jobs/").data
    assert listing["count"] == 0
    listing = api("viewer").get("/api/v1/jobs/", {"status": "queued"}).data
    assert [j["id"] for j in listing["results"]] == [job.pk]
    assert api("viewer").get("/api/v1/jobs/", {"status": "bogus"}).status_code == 400
