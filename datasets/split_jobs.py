"""Splitting a version as a job: `split_request` checks what it can without reading the rows and
queues `dataset.split`, which runs `services.version_split` (the one implementation, also called
by the UI and by code that needs a split at once).

The checks here use the version's schema and profile (row count, distinct values, missing
values), so the mistakes people make (a column that does not exist, a single-class target, too
few groups) are a 400 naming the field, and nothing is queued. What only the rows can tell
(e.g. sizes that leave a part without any group) fails the job with the same message.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from datasets import splitting
from datasets.models import DatasetVersion, VersionStatus
from jobs.models import Job
from jobs.runner import JobContext, job_enqueue, job_handler
from mlplatform.api import valid_list
from mlplatform.errors import Conflict, InvalidInput
from projects.events import AuditAction
from projects.services import audit_record


def _profile_column(version: DatasetVersion, name: str) -> dict[str, Any] | None:
    return next((c for c in (version.profile or {}).get("columns", []) if c.get("name") == name), None)


def _check_column(version: DatasetVersion, strategy: str, column: str | None) -> None:
    if strategy == "random":
        return
    if not column:
        raise InvalidInput(f"The {strategy} strategy needs a column.", field="column")
    names = [c["name"] for c in version.schema or []]
    if column not in names:
        raise InvalidInput(f"No column named {column!r}; the columns are {', '.join(names)}.", field="column")
    info = _profile_column(version, column)
    if info is None:
        return
    distinct = int(info.get("unique") or 0) + (1 if info.get("missing") else 0)  # missing is a class of its own
    if strategy == "stratified":
        if distinct < 2:
            raise InvalidInput(
                f"{column!r} has a single class: there is nothing to stratify, or to classify. "
                "Choose another target or collect examples of the other classes.",
                field="column",
            )
        top = info.get("top_values") or []
        if top and len(top) >= int(info.get("unique") or 0):  # the top values are every class
            rare = min(top, key=lambda t: t["count"])
            if rare["count"] < 3:
                raise InvalidInput(
                    f"Class {rare['value']!r} of {column!r} has {rare['count']} rows; stratifying needs at least 3 "
                    "per class (use random, or merge rare classes).",
                    field="column",
                )
    if strategy == "group" and distinct < 3:
        raise InvalidInput("Grouping needs at least 3 distinct groups.", field="column")


def split_check(
    *, version: DatasetVersion, strategy: str, test_size: float, val_size: float, column: str | None
) -> None:
    """Every check `version_split` makes that needs no rows; raises the same errors."""
    if strategy not in splitting.STRATEGIES:
        raise InvalidInput(f"Unknown strategy {strategy!r}: use {valid_list(splitting.STRATEGIES)}.", field="strategy")
    try:
        splitting._check_sizes(test_size, val_size)
    except splitting.SplitError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}; only a ready version can be split.", field="version")
    if version.test_used_at is not None:
        raise Conflict(
            "The locked test set of this version has been used by a final evaluation; its split can no longer change."
        )
    if version.split and version.experiments.exists():
        raise Conflict("Experiments use this split; make a new version to split differently.")
    if version.row_count is not None and version.row_count < 10:
        raise InvalidInput(f"A split needs at least 10 rows; this version has {version.row_count}.", field="strategy")
    _check_column(version, strategy, column)


def split_request(
    *,
    version: DatasetVersion,
    actor: Any,
    strategy: str,
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    column: str | None = None,
) -> Job:
    """Check the split and queue it; the version keeps its current split until the job is done."""
    split_check(version=version, strategy=strategy, test_size=test_size, val_size=val_size, column=column)
    params = {"strategy": strategy, "test_size": test_size, "val_size": val_size, "seed": seed, "column": column}
    with transaction.atomic():
        job = job_enqueue(
            project=version.project,
            kind="dataset.split",
            created_by=actor,
            params={"version_id": version.pk, **params},
            target=version,
            message="Waiting for a worker to split the rows",
        )
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_VERSION_SPLIT_REQUESTED,
            project=version.project,
            obj=version,
            data=params,
        )
    return job


def split_execute(*, job: Job, ctx: JobContext) -> dict[str, Any]:
    """The split a `dataset.split` job asked for (idempotent: a redelivery finds it done)."""
    from datasets.services import version_split

    p = job.params
    version = DatasetVersion.objects.select_related("project").get(pk=p["version_id"])
    wanted = {k: p[k] for k in ("strategy", "test_size", "val_size", "seed", "column")}
    if version.split and {k: version.split.get(k) for k in wanted} == wanted and version.split_key:
        return {"version_id": version.pk, "counts": version.split["counts"]}  # a redelivery: done already
    ctx.progress(10, f"Splitting {version.row_count or 0:,} rows ({p['strategy']})")
    version = version_split(
        version=version,
        actor=job.created_by,
        strategy=p["strategy"],
        test_size=p["test_size"],
        val_size=p["val_size"],
        seed=p["seed"],
        column=p["column"],
    )
    return {"version_id": version.pk, "counts": version.split["counts"]}


@job_handler("dataset.split")
def split_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    return split_execute(job=job, ctx=ctx)
