"""Celery entry points of the deployments app (beat: monitoring snapshots, the prediction log's
safety net). Their names are in mlplatform.celery's beat schedule: keep them."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="deployments.tasks.schedule_snapshots", ignore_result=True)
def schedule_snapshots() -> int:
    """Queue a monitoring snapshot for every deployment whose interval has passed."""
    from deployments.monitoring.services.snapshots import schedule_due_snapshots
    from deployments.reviews.services import review_sla_check_all

    # The review queue's SLA alert fires on time even between snapshots.
    review_sla_check_all()
    return schedule_due_snapshots()


@shared_task(name="deployments.tasks.drain_prediction_log", ignore_result=True)
def drain_prediction_log() -> int:
    """Write queued predictions no web process is left to drain, and the claims of dead drainers."""
    from deployments.serving import prediction_log

    if not prediction_log.enabled():
        return 0
    return prediction_log.recover() + prediction_log.drain()


@shared_task(name="deployments.tasks.prediction_store_housekeeping", ignore_result=True)
def prediction_store_housekeeping() -> dict:
    """Every deployment: delete predictions past their retention (rows and segment files), merge
    closed hours' segments, delete orphan segment files; batch files past their retention; the
    files of old model versions nothing can serve again (MODEL_VERSION_RETENTION_DAYS)."""
    from deployments import prediction_store
    from deployments.batch.services import batch_files_expire
    from deployments.registry.services import model_versions_archive

    return {**prediction_store.housekeeping_all(), **batch_files_expire(), **model_versions_archive()}
