"""Celery entry points for jobs: take an id, call the runner. Nothing else lives here."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from jobs import runner


@shared_task(bind=True, name="jobs.tasks.run_job", max_retries=None, ignore_result=True)
def run_job(self, job_id: int) -> str:
    outcome = runner.execute(job_id)
    if outcome == "busy":
        # Another delivery holds a live claim. If its worker died, the heartbeat goes stale
        # and this retry claims the job; if it is alive, this retry finds it finished.
        # Bounded: a job cannot be busy longer than its time limit.
        if self.request.retries * settings.JOB_STALE_AFTER_SECONDS < settings.CELERY_TASK_TIME_LIMIT * 2:
            raise self.retry(countdown=settings.JOB_STALE_AFTER_SECONDS + 1)
    elif outcome == "retry":
        from jobs.models import Job

        job = Job.objects.get(pk=job_id)
        # Exponential back-off for transient faults.
        runner.publish(job_id, job.queue, countdown=min(300, 2**job.attempts))
    return outcome


@shared_task(name="jobs.tasks.sweep_stale_jobs", ignore_result=True)
def sweep_stale_jobs() -> dict[str, int]:
    return runner.sweep_stale_jobs()
