"""Batch jobs: score a file or dataset version, then log its predictions for monitoring."""

from __future__ import annotations

from deployments.batch import services
from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler(services.BATCH_JOB)
def batch_predict(job: Job, ctx: JobContext) -> dict:
    return services.batch_run(job=job, ctx=ctx)


@job_handler(services.BATCH_LOG_JOB)
def batch_log(job: Job, ctx: JobContext) -> dict:
    return services.batch_log_run(job=job, ctx=ctx)
