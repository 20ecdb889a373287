"""Jobs of the datasets app: reading data into a version, and profiling a version.

Both are idempotent: a redelivered ingest finds the version already filled (storage_key set)
and only makes sure a profile is coming; a redelivered profile recomputes and overwrites.
A failure marks the version `failed` with a message naming the problem; other versions of
the dataset are never touched. Whatever ends a job without success (an exception nobody
expected, retries spent, a worker killed on every attempt, a cancel) reaches
`version_jobs.version_failed` through the runner's `on_failure` hook: no version stays "processing".
"""

from __future__ import annotations

from typing import Any

from datasets import cleaning, version_jobs
from datasets.split_jobs import split_job  # noqa: F401 - registers the dataset.split job
from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler("dataset.ingest", on_failure=version_jobs.version_failed)
def ingest(job: Job, ctx: JobContext) -> dict[str, Any]:
    last_attempt = job.attempts >= job.max_attempts
    return version_jobs.ingest_run(version_id=job.params["version_id"], last_attempt=last_attempt, ctx=ctx)


@job_handler("dataset.profile", on_failure=version_jobs.version_failed)
def profile(job: Job, ctx: JobContext) -> dict[str, Any]:
    return version_jobs.profile_run(version_id=job.params["version_id"], ctx=ctx)


@job_handler("dataset.clean", on_failure=version_jobs.version_failed)
def clean(job: Job, ctx: JobContext) -> dict[str, Any]:
    return cleaning.clean_run(version_id=job.params["version_id"], source_id=job.params["source_id"], ctx=ctx)
