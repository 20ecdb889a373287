"""Writes on datasets: versions (immutable), splits. Keyword-only, typed.

Ingestion from files / URLs / SQL runs as jobs (datasets/job_handlers.py) and ends in
`version_create_from_frame`, which every other producer of data (appends, recipes, retrains,
tests) calls too.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from datasets import splitting
from datasets.models import Dataset, DatasetVersion, VersionSource, VersionStatus
from datasets.storage import assignment_save, content_hash, frame_save
from mlplatform.errors import Conflict, InvalidInput
from projects.models import Project
from projects.services import audit_record


def dataset_create(*, project: Project, name: str, created_by: Any, description: str = "") -> Dataset:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A dataset needs a name.", field="name")
    if Dataset.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A dataset named {name!r} already exists in this project.", field="name")
    dataset = Dataset.objects.create(project=project, name=name, description=description, created_by=created_by)
    audit_record(actor=created_by, action="dataset.created", project=project, obj=dataset)
    return dataset


def next_version_number(dataset: Dataset) -> int:
    # Called inside a transaction that locked the dataset row (select_for_update).
    return (DatasetVersion.objects.filter(dataset=dataset).aggregate(m=Max("number"))["m"] or 0) + 1


def version_reserve(
    *,
    dataset: Dataset,
    source: str,
    created_by: Any,
    source_detail: dict | None = None,
    parent: DatasetVersion | None = None,
    upload_key: str = "",
) -> DatasetVersion:
    """Create a `processing` version whose data a job fills in later."""
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        return DatasetVersion.objects.create(
            project=dataset.project,
            dataset=dataset,
            number=next_version_number(dataset),
            source=source,
            source_detail=source_detail or {},
            parent=parent,
            created_by=created_by,
            upload_key=upload_key,
            status=VersionStatus.PROCESSING,
        )


def validate_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.shape[1] == 0:
        raise InvalidInput("The data has no columns (a header row is required).", field="file")
    if len(frame) == 0:
        raise InvalidInput("The data has a header but no rows.", field="file")
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    if any(c == "" for c in frame.columns):
        raise InvalidInput("Every column needs a name; the header has an empty one.", field="file")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise InvalidInput(f"Column names must be unique; repeated: {duplicated[0]!r}.", field="file")
    # Object columns with mixed types are stored as text: Parquet needs one type per column.
    for column in frame.columns:
        if frame[column].dtype == object:
            values = frame[column].dropna()
            if len({type(v) for v in values.head(1000)}) > 1:
                frame[column] = frame[column].map(
                    lambda v: v if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                )
    return frame


def version_fill(*, version: DatasetVersion, frame: pd.DataFrame, enqueue_profile: bool = True) -> DatasetVersion:
    """Store a processing version's rows and mark it ready. Slow work first, one short write last."""
    frame = validate_frame(frame)
    digest = content_hash(frame)
    existing = (
        DatasetVersion.objects.filter(project=version.project, content_hash=digest, status=VersionStatus.READY)
        .exclude(storage_key="")
        .first()
    )
    if existing is not None:
        key, size = existing.storage_key, existing.size_bytes  # identical content: stored once
    else:
        stored = frame_save(frame, prefix=f"projects/{version.project_id}/datasets")
        key, size = stored.key, stored.size
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(
            storage_key=key,
            content_hash=digest,
            size_bytes=size,
            row_count=len(frame),
            column_count=frame.shape[1],
            schema=[{"name": c, "dtype": str(t)} for c, t in frame.dtypes.items()],
            status=VersionStatus.READY if not enqueue_profile else VersionStatus.PROCESSING,
            error="",
        )
        version.refresh_from_db()
        if enqueue_profile:
            profile_enqueue(version=version, actor=version.created_by)
    return version


def profile_enqueue(*, version: DatasetVersion, actor: Any):
    from jobs.runner import get_handler, job_enqueue

    try:
        get_handler("dataset.profile")
    except KeyError:
        DatasetVersion.objects.filter(pk=version.pk).update(status=VersionStatus.READY)
        version.status = VersionStatus.READY
        return None
    return job_enqueue(
        project=version.project,
        kind="dataset.profile",
        created_by=actor,
        params={"version_id": version.pk},
        target=version,
    )


def version_create_from_frame(
    *,
    dataset: Dataset,
    frame: pd.DataFrame,
    source: str = VersionSource.GENERATED,
    created_by: Any = None,
    parent: DatasetVersion | None = None,
    source_detail: dict | None = None,
    enqueue_profile: bool = True,
) -> DatasetVersion:
    """Make a new version from an in-memory frame (appends, recipes, retrains, the demo, tests)."""
    validate_frame(frame)
    version = version_reserve(
        dataset=dataset, source=source, created_by=created_by, source_detail=source_detail, parent=parent
    )
    return version_fill(version=version, frame=frame, enqueue_profile=enqueue_profile)


def version_fail(*, version: DatasetVersion, error: str) -> None:
    DatasetVersion.objects.filter(pk=version.pk).update(status=VersionStatus.FAILED, error=error[:5000])


def version_split(
    *,
    version: DatasetVersion,
    actor: Any,
    strategy: str,
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 42,
    column: str | None = None,
) -> DatasetVersion:
    """Assign each row to train / validation / locked test. Refused once the split is in use."""
    from datasets.selectors import version_frame

    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}; only a ready version can be split.", field="version")
    if version.test_used_at is not None:
        raise Conflict(
            "The locked test set of this version has been used by a final evaluation; its split can no longer change."
        )
    if version.split and version.experiments.exists():
        raise Conflict("Experiments use this split; make a new version to split differently.")
    frame = version_frame(version)
    try:
        result = splitting.assign_split(
            frame, strategy=strategy, test_size=test_size, val_size=val_size, seed=seed, column=column
        )
    except splitting.SplitError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    stored = assignment_save(result.assignment, prefix=f"projects/{version.project_id}/splits")
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        warnings = [w for w in version.warnings if not str(w.get("kind", "")).startswith("split_")] + result.warnings
        version.split = {
            "strategy": strategy,
            "test_size": test_size,
            "val_size": val_size,
            "seed": seed,
            "column": column,
            "counts": result.counts,
            "created_at": timezone.now().isoformat(),
        }
        version.split_key = stored.key
        version.test_locked = True
        version.warnings = warnings
        version.save(update_fields=["split", "split_key", "test_locked", "warnings"])
        audit_record(
            actor=actor, action="dataset_version.split", project=version.project, obj=version, data=version.split
        )
    return version
