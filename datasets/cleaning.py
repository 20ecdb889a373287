"""Cleaning a version: the request (`version_clean`) and the job's work (`clean_run`).

Only steps that do not change how a future row is read are applied to the data itself; the
rest of a recipe is fitted per fold and saved with the model.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from django.db import transaction

from datasets import services
from datasets.ingest import prepare
from datasets.models import DatasetVersion, VersionSource, VersionStatus
from jobs.runner import JobContext
from mlplatform.errors import DomainError, InvalidInput
from projects.events import AuditAction
from projects.services import audit_record

CLEANING_OPS = ("drop_columns", "drop_duplicates")


def version_clean(*, version: DatasetVersion, steps: Any, actor: Any) -> DatasetVersion:
    """A new version with the recipe's data-cleaning steps applied to every row (a job does it).

    Only steps that do not change how a future row is read are applied to the data itself
    (dropping columns, dropping exact duplicate rows: do it before splitting so a row cannot
    sit in both train and test). Everything else stays in the recipe, fitted per fold and saved
    with the model.
    """
    from datasets.recipes import RecipeError, validate_steps

    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}.", field="version")
    try:
        steps = validate_steps(steps)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    cleaning = [s for s in steps if s["op"] in CLEANING_OPS]
    if not cleaning:
        raise InvalidInput("No cleaning step (drop_columns, drop_duplicates) to apply.", field="steps")
    services.recipe_check(steps=cleaning, version=version)
    with transaction.atomic():
        new = services.version_reserve(
            dataset=version.dataset,
            source=VersionSource.RECIPE,
            created_by=actor,
            source_detail={"steps": cleaning, "from_version": version.number},
            parent=version,
        )
        DatasetVersion.objects.filter(pk=new.pk).update(target_column=version.target_column)
        from jobs.runner import job_enqueue

        job_enqueue(
            project=version.project,
            kind="dataset.clean",
            created_by=actor,
            params={"version_id": new.pk, "source_id": version.pk},
            target=new,
        )
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_VERSION_CLEANED,
            project=version.project,
            obj=new,
            data={"steps": cleaning},
        )
    return new


def apply_cleaning(frame: pd.DataFrame, steps: list[dict]) -> pd.DataFrame:
    for step in steps:
        if step["op"] == "drop_columns":
            frame = frame.drop(columns=step.get("columns") or [], errors="ignore")
        elif step["op"] == "drop_duplicates":
            frame = frame.drop_duplicates(ignore_index=True)
    return frame


def clean_run(*, version_id: int, source_id: int, ctx: JobContext) -> dict[str, Any]:
    """The `dataset.clean` job: the source version's rows, cleaned, profiled, stored as the new version."""
    from datasets.selectors import version_frame
    from datasets.version_jobs import DataProblem, profile_size_check

    version = DatasetVersion.objects.select_related("project").filter(pk=version_id).first()
    source = DatasetVersion.objects.filter(pk=source_id).first()
    if version is None or version.storage_key or version.status == VersionStatus.FAILED:
        return {"skipped": True}
    if source is None:
        services.version_fail(version=version, error="The source version no longer exists.")
        raise DataProblem("The source version no longer exists.")
    ctx.progress(10, f"Reading v{source.number}")
    frame = version_frame(source)
    before = len(frame)
    frame = apply_cleaning(frame, version.source_detail.get("steps", []))
    ctx.progress(40, f"{before - len(frame)} rows removed; profiling")
    try:
        ready = prepare(
            services.validate_frame(frame),
            target=version.target_column,
            task=version.project.task_type,
            objective=version.project.objective,
        )
        profile_size_check(ready.profile)
        services.version_fill(
            version=version, frame=frame, profile=ready.profile, hashes=ready.hashes, parquet=ready.parquet
        )
    except DomainError as exc:
        services.version_fail(version=version, error=exc.message)
        raise DataProblem(exc.message) from None
    except DataProblem as exc:
        services.version_fail(version=version, error=str(exc))
        raise
    return {"version": version.pk, "rows_removed": before - len(frame)}
