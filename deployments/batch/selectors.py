"""Batch's reads: a deployment's batch jobs, with the child job that logs each one's predictions."""

from __future__ import annotations

from django.db.models import QuerySet

from deployments.batch.services import BATCH_JOB
from deployments.models import Deployment
from jobs.models import Job


def batch_jobs(deployment: Deployment) -> QuerySet[Job]:
    return Job.objects.filter(
        project=deployment.project_id, kind=BATCH_JOB, target_type="deployment", target_id=deployment.pk
    ).order_by("-created_at")


def batch_jobs_with_logging(deployment: Deployment, *, limit: int) -> list[Job]:
    """The newest batch jobs, each with `log_job`: the child job logging its predictions (or None)."""
    batches = list(batch_jobs(deployment)[:limit])
    log_ids = [b.result["logging_job_id"] for b in batches if (b.result or {}).get("logging_job_id")]
    logs = {j.pk: j for j in Job.objects.filter(pk__in=log_ids)}
    for b in batches:
        b.log_job = logs.get((b.result or {}).get("logging_job_id"))
    return batches
