"""Reads of jobs: the status a user sees covers the job *and* the child jobs it started.

A coordinator (an experiment's `experiment.train`, a batch job that hands its rows to a
logging child) finishes its own step quickly and leaves children running. Its row keeps the
status of its own step (`own_status`: the batch output is ready when its own step succeeded),
while every reader of the API sees the roll-up:

- `running` while any child is queued or running, whatever the parent's own status;
- once every child is terminal: the parent's own status, except that a parent that succeeded
  but whose cancellation stopped its children reads `cancelled`;
- progress = (own progress + each child's progress, a finished child counting 100) divided by
  (1 + the number of children expected), so it keeps moving while trials run. A handler states
  how many children it expects with `result["children_expected"]` (the experiment's planned
  trials); without it the children that exist so far are the denominator.

Computed when read (no counter to keep in step with the children's rows): one `EXISTS` per
listed row for the status, and one grouped query per page for the progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from jobs.models import TERMINAL, Job, JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def job_rollup(queryset: QuerySet[Job]) -> QuerySet[Job]:
    """Annotate `effective_status`, filterable (`?status=running` lists busy coordinators)."""
    return queryset.annotate(
        _pending_children=Exists(Job.objects.filter(parent=OuterRef("pk"), status__in=ACTIVE)),
        _cancelled_children=Exists(Job.objects.filter(parent=OuterRef("pk"), status=JobStatus.CANCELLED)),
    ).annotate(
        effective_status=Case(
            When(
                Q(_pending_children=True) & ~Q(status__in=[JobStatus.FAILED, JobStatus.CANCELLED]),
                then=Value(JobStatus.RUNNING.value),
            ),
            When(
                status=JobStatus.SUCCEEDED,
                cancel_requested=True,
                _cancelled_children=True,
                then=Value(JobStatus.CANCELLED.value),
            ),
            default=F("status"),
            output_field=CharField(),
        )
    )


@dataclass(frozen=True)
class Children:
    total: int = 0
    expected: int = 0
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    progress_sum: int = 0  # finished children count 100

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "expected": max(self.expected, self.total),
            "active": self.active,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }


def children_summaries(jobs: list[Job]) -> dict[int, Children]:
    """Per parent id: counts of its children by status and their summed progress (one query)."""
    ids = [j.pk for j in jobs]
    if not ids:
        return {}
    rows = (
        Job.objects.filter(parent_id__in=ids)
        .values("parent_id")
        .annotate(
            total=Count("id"),
            active=Count("id", filter=Q(status__in=ACTIVE)),
            succeeded=Count("id", filter=Q(status=JobStatus.SUCCEEDED)),
            failed=Count("id", filter=Q(status=JobStatus.FAILED)),
            cancelled=Count("id", filter=Q(status=JobStatus.CANCELLED)),
            progress_sum=Coalesce(
                Sum(
                    Case(
                        When(status__in=TERMINAL, then=Value(100)),
                        default="progress",
                        output_field=IntegerField(),
                    )
                ),
                0,
            ),
        )
        .order_by()
    )
    expected = {j.pk: _expected(j) for j in jobs}
    return {
        r["parent_id"]: Children(
            total=r["total"],
            expected=expected.get(r["parent_id"], 0),
            active=r["active"],
            succeeded=r["succeeded"],
            failed=r["failed"],
            cancelled=r["cancelled"],
            progress_sum=r["progress_sum"],
        )
        for r in rows
    }


def _expected(job: Job) -> int:
    value = (job.result or {}).get("children_expected") if isinstance(job.result, dict) else None
    return value if isinstance(value, int) and value > 0 else 0


@dataclass(frozen=True)
class Rollup:
    status: str
    progress: int
    message: str
    children: dict[str, int] | None


def effective_status(job: Job, children: Children | None) -> str:
    annotated = getattr(job, "effective_status", None)
    if annotated:
        return annotated
    if children is None or children.total == 0:
        return job.status
    if children.active and job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        return JobStatus.RUNNING
    if job.status == JobStatus.SUCCEEDED and job.cancel_requested and children.cancelled:
        return JobStatus.CANCELLED
    return job.status


def rollup(job: Job, children: Children | None, *, running_child_message: str = "") -> Rollup:
    """What a reader sees of `job`: status, progress and message over the job and its children."""
    status = effective_status(job, children)
    if children is None or children.total == 0:
        return Rollup(status, job.progress, job.message, None)
    own = 100 if job.status in TERMINAL else job.progress
    denominator = 1 + max(children.expected, children.total)
    progress = int((own + children.progress_sum) / denominator)
    if status in TERMINAL:
        progress = 100 if status == JobStatus.SUCCEEDED else min(progress, 100)
    else:
        progress = min(progress, 99)  # 100 means done: not while a child still runs
    message = job.message
    if status == JobStatus.RUNNING and job.status in TERMINAL:
        done = children.total - children.active
        message = f"{done} of {max(children.expected, children.total)} child jobs done"
        if running_child_message:
            message = f"{message}; {running_child_message}"
    return Rollup(status, progress, message[:300], children.as_dict())


def running_child_message(job: Job) -> str:
    """The most recent word of a running child ("random_forest: fold 3 of 5"), for one job's view."""
    child = (
        Job.objects.filter(parent=job, status=JobStatus.RUNNING)
        .order_by("-heartbeat_at", "-pk")
        .values("kind", "message")
        .first()
    )
    return f"{child['kind']}: {child['message']}" if child and child["message"] else ""


def job_state(job_id: int) -> dict[str, Any] | None:
    """The cheap read a waiting client repeats: status, progress, message of one job (two queries)."""
    job = job_rollup(Job.objects.filter(pk=job_id)).first()
    if job is None:
        return None
    summary = children_summaries([job]).get(job.pk)
    view = rollup(job, summary)
    return {"id": job.pk, "status": view.status, "progress": view.progress, "message": view.message}


def with_rollups(jobs) -> list[Job]:
    """Jobs for a page: each gets `.rolled` (status, progress, message over its children)."""
    jobs = list(jobs)
    summaries = children_summaries(jobs)
    for job in jobs:
        job.rolled = rollup(job, summaries.get(job.pk))
    return jobs
