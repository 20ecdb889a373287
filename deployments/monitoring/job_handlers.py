"""Monitoring's jobs: a snapshot, a retrain. Each takes its parameters and calls one service."""

from __future__ import annotations

from deployments.monitoring.services import retrain, snapshots
from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler(snapshots.SNAPSHOT_JOB)
def snapshot(job: Job, ctx: JobContext) -> dict:
    return snapshots.snapshot_run(job_id=job.pk, params=job.params, ctx=ctx)


@job_handler(retrain.RETRAIN_JOB, queue="training")
def retrain_job(job: Job, ctx: JobContext) -> dict:
    return retrain.retrain_run(job=job, ctx=ctx)
