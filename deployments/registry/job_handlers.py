"""The registry's job: prepare a new model version (input schema, drift reference)."""

from __future__ import annotations

from deployments.registry import services
from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler(services.PREPARE_JOB)
def prepare(job: Job, ctx: JobContext) -> dict:
    ctx.progress(10, "Reading the training rows")
    return services.model_version_prepare_run(
        model_version_id=job.params["model_version_id"], features=job.params["features"]
    )
