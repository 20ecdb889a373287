"""The Celery app. Workers use the same settings module as the web process."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")

app = Celery("mlplatform")


def configure(app: Celery) -> None:
    from django.conf import settings

    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_connection_retry_on_startup=True,
        # At-least-once delivery: a message is acknowledged only after the task ends, and a
        # task whose worker process died is re-queued instead of being dropped. Tasks are
        # idempotent (jobs claim their row) so a second delivery does no harm.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        task_soft_time_limit=settings.CELERY_TASK_TIME_LIMIT - 60,
        # The SQLAlchemy transport (embedded mode) takes no transport options; Redis gets the
        # visibility timeout that the task time limit stays below.
        broker_transport_options={}
        if settings.EMBEDDED_BROKER
        else {
            "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # nothing waits on a task result: state lives in Job rows
        result_backend=None,
        task_default_queue="default",
        task_queues=[Queue("default"), Queue("training"), Queue("logging")],
        task_routes={
            "jobs.tasks.run_job": {"queue": "default"},
        },
        worker_send_task_events=False,
        timezone="UTC",
        beat_schedule={
            "jobs-sweep": {"task": "jobs.tasks.sweep_stale_jobs", "schedule": settings.JOB_SWEEP_SECONDS},
            "monitoring-snapshots": {"task": "deployments.tasks.schedule_snapshots", "schedule": 60.0},
            "prediction-log": {"task": "deployments.tasks.drain_prediction_log", "schedule": 30.0},
            # The columnar prediction store: retention, hourly compaction, orphan files (hourly).
            "prediction-store": {"task": "deployments.tasks.prediction_store_housekeeping", "schedule": 3600.0},
        },
    )


configure(app)
app.autodiscover_tasks()
