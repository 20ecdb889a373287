"""Running jobs: registration of handlers, enqueueing after commit, claiming, heartbeats.

A handler is a plain function `handler(job, ctx) -> dict | None` registered under a kind:

    @job_handler("dataset.profile")
    def profile(job: Job, ctx: JobContext) -> dict:
        ctx.progress(10, "Reading the file")
        ...
        return {"rows": n}

It must be idempotent: a job can be delivered twice (late acks) or re-run after its worker died,
so it writes artefacts under temporary names and records results in one short transaction.
Raise `RetryableError` for transient faults; any other exception fails the job with its
traceback. `ctx.progress` raises `JobCancelled` once a user asked to cancel.

Registration also declares what must never leave the server and what to do when the job ends
without success:

    @job_handler("webhook.deliver", secret_params=("secret",), on_failure=...)

- `secret_params` / `secret_result`: keys never serialised to anyone (API, pages, audit data);
  `jobs.redaction.job_public_params` / `job_public_result` are the only way to show them, and
  secret params are erased from the row once the job is finished;
- `on_failure(job, error)`: called once the job is failed or cancelled by *any* path (the
  handler raised, its retries ran out, its worker died every time, the sweep gave up on it, a
  user cancelled it), so the object it works on never stays "processing".
"""

from __future__ import annotations

import logging
import threading
import traceback as tb
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db import utils as db_utils
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from jobs.models import TERMINAL, Job, JobStatus

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


class JobLost(Exception):
    """Another worker took this job over (our heartbeat went stale); stop without writing."""


class RetryableError(Exception):
    """A transient fault: the job is queued again, up to its max_attempts."""


Handler = Callable[[Job, "JobContext"], "dict[str, Any] | None"]


FailureHook = Callable[[Job, str], None]


@dataclass(frozen=True)
class HandlerSpec:
    kind: str
    func: Handler
    queue: str
    secret_params: frozenset[str] = frozenset()
    secret_result: frozenset[str] = frozenset()
    on_failure: FailureHook | None = None


_HANDLERS: dict[str, HandlerSpec] = {}
_discovered = False


def job_handler(
    kind: str,
    *,
    queue: str = "default",
    secret_params: tuple[str, ...] = (),
    secret_result: tuple[str, ...] = (),
    on_failure: FailureHook | None = None,
) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _HANDLERS[kind] = HandlerSpec(kind, func, queue, frozenset(secret_params), frozenset(secret_result), on_failure)
        return func

    return register


def get_handler(kind: str) -> HandlerSpec:
    global _discovered
    if kind not in _HANDLERS and not _discovered:
        autodiscover_modules("job_handlers")
        _discovered = True
    return _HANDLERS[kind]


def job_enqueue(
    *,
    project: Any,
    kind: str,
    created_by: Any = None,
    params: dict[str, Any] | None = None,
    target: Any = None,
    parent: Job | None = None,
    max_attempts: int | None = None,
    message: str = "Waiting for a worker",
) -> Job:
    """Create a queued job and publish its task once the surrounding transaction commits.

    Publishing after commit means a rolled-back request queues nothing, and a worker never
    looks for a row that is not there yet.
    """
    spec = get_handler(kind)
    job = Job.objects.create(
        project=project,
        kind=kind,
        queue=spec.queue,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        params=params or {},
        target_type=target._meta.model_name if target is not None else "",
        target_id=target.pk if target is not None else None,
        parent=parent,
        max_attempts=max_attempts or settings.JOB_MAX_ATTEMPTS,
        message=message,
        enqueued_at=timezone.now(),
    )
    transaction.on_commit(lambda: publish(job.pk, spec.queue))
    return job


def publish(job_id: int, queue: str, countdown: float | None = None) -> None:
    from jobs.tasks import run_job

    run_job.apply_async(args=[job_id], queue=queue, countdown=countdown)


class JobContext:
    """What a handler gets besides its job: progress reporting and cancellation."""

    def __init__(self, job: Job, token: uuid.UUID):
        self.job = job
        self.token = token
        self.cancel_requested = False
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"job-{job.pk}-heartbeat", daemon=True)

    # -- heartbeat ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    updated = Job.objects.filter(pk=self.job.pk, claim_token=self.token).update(
                        heartbeat_at=timezone.now()
                    )
                    if not updated:
                        self.lost = True
                        return
                    self.cancel_requested = Job.objects.filter(pk=self.job.pk, cancel_requested=True).exists()
                except db_utils.Error:
                    logger.warning("heartbeat of job %s failed; will try again", self.job.pk, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()

    # -- reporting ------------------------------------------------------------------------------
    def check(self) -> None:
        if self.lost:
            raise JobLost()
        if self.cancel_requested:
            raise JobCancelled()

    def progress(self, percent: float, message: str | None = None, *, log: bool = True) -> None:
        """Record progress (0-100) and a short message; raises JobCancelled when asked to stop."""
        self.check()
        values: dict[str, Any] = {"progress": max(0, min(100, int(percent))), "heartbeat_at": timezone.now()}
        if message is not None:
            values["message"] = message[:300]
            if log:
                values["log"] = Concat(F("log"), Value(f"{timezone.now():%H:%M:%S} {message}\n"))
        updated = Job.objects.filter(pk=self.job.pk, claim_token=self.token).update(**values)
        if not updated:
            self.lost = True
            raise JobLost()
        row = Job.objects.filter(pk=self.job.pk).values("cancel_requested").first()
        if row and row["cancel_requested"]:
            self.cancel_requested = True
            raise JobCancelled()

    def log(self, message: str) -> None:
        Job.objects.filter(pk=self.job.pk, claim_token=self.token).update(
            log=Concat(F("log"), Value(f"{timezone.now():%H:%M:%S} {message}\n"))
        )


def _finish(job_id: int, token: uuid.UUID | None, status: str, **values: Any) -> bool:
    """End a job (once: the claim token or the status guards it), forgetting its secret params in
    the same write; then the handler's failure hook, if it did not succeed."""
    row = Job.objects.filter(pk=job_id).values("kind", "params").first()
    if row is None:
        return False
    spec = _HANDLERS.get(row["kind"])
    params = row["params"] or {}
    if spec is not None and spec.secret_params & set(params):
        # The worker needed them to do the job; nobody needs them afterwards.
        values["params"] = {k: v for k, v in params.items() if k not in spec.secret_params}
    qs = Job.objects.filter(pk=job_id).exclude(status__in=TERMINAL)
    if token is not None:
        qs = qs.filter(claim_token=token)
    if not qs.update(status=status, finished_at=timezone.now(), claim_token=None, **values):
        return False
    if status != JobStatus.SUCCEEDED and spec is not None and spec.on_failure is not None:
        error = values.get("error") or values.get("message") or str(status)
        job = Job.objects.filter(pk=job_id).first()
        try:
            if job is not None:
                spec.on_failure(job, str(error))
        except Exception:  # a broken hook must not undo the job's own ending (logged)
            logger.exception("on_failure hook of job %s (%s) failed", job_id, row["kind"])
    return True


def job_fail(job: Job, error: str, trace: str = "") -> None:
    _finish(job.pk, None, JobStatus.FAILED, error=error[:5000], traceback=trace)


def _claim(job: Job) -> uuid.UUID | None:
    """Take the job for this delivery: queued, or running with a heartbeat gone stale."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    token = uuid.uuid4()
    claimed = (
        Job.objects.filter(pk=job.pk)
        .filter(Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale))
        .update(
            status=JobStatus.RUNNING,
            claim_token=token,
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=Coalesce(F("started_at"), Value(now)),
            message="Running",
        )
    )
    return token if claimed else None


def execute(job_id: int) -> str:
    """Run one delivery of a job. Returns what happened: done, busy, ran, retry, gone."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return "gone"
    if job.status in TERMINAL:
        return "done"
    if job.status == JobStatus.QUEUED and job.cancel_requested:
        _finish(job.pk, None, JobStatus.CANCELLED, message="Cancelled before it started")
        return "done"
    token = _claim(job)
    if token is None:
        # Either another worker is running it right now (a duplicate delivery, or our own
        # redelivery after a child was killed, whose heartbeat has not gone stale yet), or it
        # has finished in the meantime.
        job.refresh_from_db()
        return "busy" if job.status == JobStatus.RUNNING else "done"

    job.refresh_from_db()
    if job.attempts > job.max_attempts:
        # Poison: its worker died on every attempt (killed, out of memory). Dead-letter it.
        _finish(
            job.pk,
            token,
            JobStatus.FAILED,
            error=f"Gave up after {job.max_attempts} attempts: the worker running this job died each time "
            "(killed or out of memory).",
        )
        return "done"
    try:
        spec = get_handler(job.kind)
    except KeyError:
        _finish(job.pk, token, JobStatus.FAILED, error=f"No handler for job kind {job.kind!r}.")
        return "done"
    return _run(job, token, spec)


def _run(job: Job, token: uuid.UUID, spec: HandlerSpec) -> str:
    """Call the handler with a heartbeat running; record how it ended (or queue a retry)."""
    ctx = JobContext(job, token)
    ctx.start()
    try:
        result = spec.func(job, ctx) or {}
        ctx.check()
    except JobCancelled:
        _finish(job.pk, token, JobStatus.CANCELLED, message="Cancelled")
        return "ran"
    except JobLost:
        logger.warning("job %s was taken over by another worker; this delivery stops", job.pk)
        return "ran"
    except (RetryableError, db_utils.OperationalError, db_utils.InterfaceError) as exc:
        close_old_connections()
        if job.attempts < job.max_attempts:
            Job.objects.filter(pk=job.pk, claim_token=token).update(
                status=JobStatus.QUEUED,
                claim_token=None,
                message=f"Retrying after: {exc}"[:300],
                enqueued_at=timezone.now(),
            )
            return "retry"
        _finish(job.pk, token, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", traceback=tb.format_exc())
        return "ran"
    except Exception as exc:
        logger.exception("job %s (%s) failed", job.pk, job.kind)
        message = str(exc) or type(exc).__name__
        _finish(job.pk, token, JobStatus.FAILED, error=message, traceback=tb.format_exc(), message="Failed")
        return "ran"
    finally:
        ctx.stop()
    _finish(job.pk, token, JobStatus.SUCCEEDED, progress=100, result=result, message="Done")
    return "ran"


@transaction.atomic
def job_cancel(*, job: Job, actor: Any) -> Job:
    from projects.events import AuditAction
    from projects.services import audit_record

    if job.status == JobStatus.QUEUED:
        _finish(job.pk, None, JobStatus.CANCELLED, message="Cancelled before it started", cancel_requested=True)
    elif job.status == JobStatus.RUNNING:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True, message="Cancelling…")
    # A finished parent (a coordinator that queued its children and returned) still cancels them,
    # and remembers it: its rolled-up status then reads `cancelled` (jobs.selectors).
    elif Job.objects.filter(parent=job, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    # One by one through `_finish`: each child's failure hook runs and its secret params go.
    for child_id in Job.objects.filter(parent=job, status=JobStatus.QUEUED).values_list("pk", flat=True):
        _finish(child_id, None, JobStatus.CANCELLED, message="Cancelled before it started", cancel_requested=True)
    Job.objects.filter(parent=job, status=JobStatus.RUNNING).update(cancel_requested=True)
    audit_record(actor=actor, action=AuditAction.JOB_CANCELLED, project=job.project, obj=job)
    job.refresh_from_db()
    return job


def sweep_stale_jobs() -> dict[str, int]:
    """Nothing stays `running` forever, and no queued job is forgotten.

    - running with a heartbeat older than twice the stale limit: its worker is gone and no
      redelivery claimed it; queue it again, or fail it once its attempts are spent;
    - queued for longer than the requeue limit: its message may have been lost (a Redis
      restart without persistence); publish it again. A duplicate is harmless: claims are atomic.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS * 2)
    requeued = failed = republished = 0
    for job in Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale):
        if job.attempts >= job.max_attempts:
            if _finish(
                job.pk,
                job.claim_token,
                JobStatus.FAILED,
                error=f"The worker running this job stopped answering (attempt {job.attempts} of "
                f"{job.max_attempts}); giving up.",
            ):
                failed += 1
        elif Job.objects.filter(pk=job.pk, claim_token=job.claim_token, status=JobStatus.RUNNING).update(
            status=JobStatus.QUEUED,
            claim_token=None,
            enqueued_at=now,
            message="Requeued: the worker running it stopped answering",
        ):
            publish(job.pk, job.queue)
            requeued += 1
    forgotten = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    for job in Job.objects.filter(status=JobStatus.QUEUED, enqueued_at__lt=forgotten):
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, enqueued_at=job.enqueued_at).update(enqueued_at=now):
            publish(job.pk, job.queue)
            republished += 1
    return {"requeued": requeued, "failed": failed, "republished": republished}
