"""Periodic snapshots: beat calls `schedule_due_snapshots` every minute (deployments.tasks)."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone


def schedule_due_snapshots() -> int:
    """Queue snapshot jobs for deployments whose interval has passed; returns how many.

    Each deployment is claimed with a conditional UPDATE on `last_snapshot_at` (the value read
    must still be there), so two beat processes, or a beat tick that overlaps a slow one,
    never queue the same snapshot twice.
    """
    from deployments.models import Deployment, DeploymentStatus
    from deployments.monitoring import monitoring_settings
    from jobs.runner import job_enqueue

    now = timezone.now()
    queued = 0
    rows = Deployment.objects.filter(status=DeploymentStatus.ACTIVE).select_related("project")
    for deployment in rows:
        interval = timedelta(minutes=int(monitoring_settings(deployment)["interval_minutes"]))
        last = deployment.last_snapshot_at
        if last is not None and last + interval > now:
            continue
        with transaction.atomic():
            claimed = Deployment.objects.filter(pk=deployment.pk, last_snapshot_at=last).update(last_snapshot_at=now)
            if not claimed:
                continue
            job_enqueue(
                project=deployment.project,
                kind="monitoring.snapshot",
                params={
                    "deployment_id": deployment.pk,
                    "window_end": now.isoformat(),
                    "window_minutes": int(interval.total_seconds() // 60),
                },
                target=deployment,
                message="Scheduled snapshot waiting for a worker",
            )
            queued += 1
    return queued
