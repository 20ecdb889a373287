"""Monitoring snapshot and retrain jobs."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime

from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler("monitoring.snapshot")
def snapshot(job: Job, ctx: JobContext) -> dict:
    from deployments import monitoring
    from deployments.models import Deployment, MonitoringSnapshot

    deployment = Deployment.objects.filter(pk=job.params["deployment_id"]).first()
    if deployment is None:
        return {"skipped": "deployment deleted"}
    # A redelivered job finds the snapshot its first delivery stored.
    snap = MonitoringSnapshot.objects.filter(deployment=deployment, data__job_id=job.pk).first()
    if snap is None:
        ctx.progress(10, "Computing traffic, drift, quality and live performance")
        end = job.params.get("window_end")
        snap = monitoring.snapshot_compute(
            deployment=deployment,
            window_end=parse_datetime(end) if end else None,
            window_minutes=job.params.get("window_minutes"),
            job_id=job.pk,
        )
    drift = snap.data["drift"]
    return {
        "snapshot_id": snap.pk,
        "sample_size": drift["sample_size"],
        "n_drifted": drift["n_drifted"],
        "max_psi": drift["max_psi"],
    }


@job_handler("monitoring.retrain", queue="training")
def retrain(job: Job, ctx: JobContext) -> dict:
    from deployments import monitoring

    return monitoring.retrain_run(job=job, ctx=ctx)
