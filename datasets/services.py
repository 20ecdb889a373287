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
from datasets.connections import (  # noqa: F401 - SQL connections are services too: one import site for callers
    dataset_from_sql,
    sql_connection_create,
    sql_connection_delete,
    sql_connection_names,
)
from datasets.models import Dataset, DatasetVersion, VersionSource, VersionStatus
from datasets.storage import assignment_save, content_hash, frame_save
from mlplatform.artifacts import bytes_save
from mlplatform.errors import Conflict, InvalidInput
from projects.events import AuditAction
from projects.models import Project
from projects.services import audit_record


def dataset_create(*, project: Project, name: str, created_by: Any, description: str = "") -> Dataset:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A dataset needs a name.", field="name")
    if Dataset.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A dataset named {name!r} already exists in this project.", field="name")
    dataset = Dataset.objects.create(project=project, name=name, description=description, created_by=created_by)
    audit_record(actor=created_by, action=AuditAction.DATASET_CREATED, project=project, obj=dataset)
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
    frame = frame.copy(deep=False)  # copy-on-write: the caller's frame is never modified
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


def version_fill(
    *,
    version: DatasetVersion,
    frame: pd.DataFrame,
    enqueue_profile: bool = True,
    profile: dict | None = None,
    hashes: Any = None,
    parquet: bytes | None = None,
) -> DatasetVersion:
    """Store a processing version's rows and mark it ready. Slow work first, one short write last.

    With `profile` (computed by the caller on the same frame, e.g. the ingest job) the version
    becomes ready with it in the same write and no profile job is queued.
    """
    frame = validate_frame(frame)
    digest = content_hash(frame, hashes)
    existing = (
        # Any version whose file is written counts, even one still being profiled.
        DatasetVersion.objects.filter(project=version.project, content_hash=digest)
        .exclude(status=VersionStatus.FAILED)
        .exclude(storage_key="")
        .first()
    )
    if existing is not None:
        key, size = existing.storage_key, existing.size_bytes  # identical content: stored once
    else:
        prefix = f"projects/{version.project_id}/datasets"
        stored = bytes_save(parquet, prefix=prefix, suffix=".parquet") if parquet else frame_save(frame, prefix=prefix)
        key, size = stored.key, stored.size
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(
            storage_key=key,
            content_hash=digest,
            size_bytes=size,
            row_count=len(frame),
            column_count=frame.shape[1],
            schema=[{"name": c, "dtype": str(t)} for c, t in frame.dtypes.items()],
            status=VersionStatus.READY if (not enqueue_profile or profile is not None) else VersionStatus.PROCESSING,
            error="",
            **(
                {"profile": {k: v for k, v in profile.items() if k != "warnings"}, "warnings": profile["warnings"]}
                if profile is not None
                else {}
            ),
        )
        version.refresh_from_db()
        if enqueue_profile and profile is None:
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
            actor=actor,
            action=AuditAction.DATASET_VERSION_SPLIT,
            project=version.project,
            obj=version,
            data=version.split,
        )
    return version


def version_split_assigned(
    *, version: DatasetVersion, actor: Any, assignment: Any, detail: dict[str, Any]
) -> DatasetVersion:
    """A split decided row by row by the caller (0 train, 1 validation, 2 locked test): a retrain
    holds out its newest labelled production rows as the locked test set. The same refusals and
    record as `version_split`; `detail` (stored in `split`) says what decided it."""
    import numpy as np

    from datasets.selectors import version_frame

    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}; only a ready version can be split.", field="version")
    if version.test_used_at is not None or (version.split and version.experiments.exists()):
        raise Conflict("This version's split is in use; make a new version to split differently.")
    assignment = np.asarray(assignment, dtype=np.int8)
    frame = version_frame(version)
    if len(assignment) != len(frame) or not np.isin(assignment, (splitting.TRAIN, splitting.VAL, splitting.TEST)).all():
        raise InvalidInput("One part (0, 1 or 2) per row of the version is required.", field="assignment")
    counts = {
        "train": int((assignment == splitting.TRAIN).sum()),
        "validation": int((assignment == splitting.VAL).sum()),
        "test": int((assignment == splitting.TEST).sum()),
    }
    warnings = splitting.leakage_checks(frame, assignment, strategy="assigned", column=None)
    stored = assignment_save(assignment, prefix=f"projects/{version.project_id}/splits")
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        kept = [w for w in version.warnings if not str(w.get("kind", "")).startswith("split_")]
        version.split = {
            "strategy": "assigned",
            "counts": counts,
            "column": None,
            "test_size": round(counts["test"] / max(1, len(frame)), 4),
            "val_size": round(counts["validation"] / max(1, len(frame)), 4),
            **detail,
            "created_at": timezone.now().isoformat(),
        }
        version.split_key = stored.key
        version.test_locked = True
        version.warnings = kept + warnings
        version.save(update_fields=["split", "split_key", "test_locked", "warnings"])
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_VERSION_SPLIT,
            project=version.project,
            obj=version,
            data=version.split,
        )
    return version


# --- collection: uploads, URLs, SQL, appends ------------------------------------------------------


def _quota_check(project: Project, incoming: int) -> None:
    from django.conf import settings
    from django.db.models import Sum

    used = DatasetVersion.objects.filter(project=project).aggregate(s=Sum("size_bytes"))["s"] or 0
    if settings.PROJECT_STORAGE_QUOTA_BYTES and used + incoming > settings.PROJECT_STORAGE_QUOTA_BYTES:
        from mlplatform.errors import PayloadTooLarge

        raise PayloadTooLarge(
            f"The project's storage quota ({settings.PROJECT_STORAGE_QUOTA_BYTES} bytes) would be exceeded.",
            field="file",
        )


def upload_store(*, project: Project, upload: Any) -> str:
    """Stream an uploaded file to storage under a generated key (never the client's filename)."""
    import uuid

    from django.conf import settings
    from django.core.files.storage import default_storage

    from mlplatform.errors import PayloadTooLarge

    size = getattr(upload, "size", 0) or 0
    if size > settings.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The file is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES}.", field="file")
    if size == 0:
        raise InvalidInput("The file is empty.", field="file")
    _quota_check(project, size)
    key = f"projects/{project.pk}/uploads/{uuid.uuid4().hex}.upload"
    return default_storage.save(key, upload)


def _display_name(filename: str) -> str:
    # Shown to users only (escaped by templates); the stored key never derives from it.
    return str(filename or "")[-200:]


def dataset_upload(
    *, project: Project, name: str, created_by: Any, upload: Any, dataset: Dataset | None = None
) -> DatasetVersion:
    """A new dataset (or a new version of `dataset`) from an uploaded file; parsed by a job."""
    if dataset is None:
        dataset_name_check(project=project, name=name)  # before storing anything
    upload_key = upload_store(project=project, upload=upload)
    try:
        return _upload_version(project, name, created_by, upload, dataset, upload_key)
    except Exception:
        from django.core.files.storage import default_storage

        default_storage.delete(upload_key)  # nothing refers to it: no orphaned files
        raise


def dataset_name_check(*, project: Project, name: str) -> None:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A dataset needs a name.", field="name")
    if Dataset.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A dataset named {name!r} already exists in this project.", field="name")


def _upload_version(project, name, created_by, upload, dataset, upload_key) -> DatasetVersion:
    return _ingest_version(
        project=project,
        name=name,
        created_by=created_by,
        dataset=dataset,
        source=VersionSource.UPLOAD,
        source_detail={"filename": _display_name(getattr(upload, "name", "")), "size": upload.size},
        upload_key=upload_key,
        action=AuditAction.DATASET_VERSION_UPLOADED,
    )


def _ingest_version(
    *,
    project: Project,
    name: str,
    created_by: Any,
    dataset: Dataset | None,
    source: str,
    source_detail: dict,
    action: AuditAction,
    upload_key: str = "",
    audit_data: dict | None = None,
) -> DatasetVersion:
    """The one way a file, URL or query becomes a version: the dataset (created if new), a
    `processing` version whose parent is the latest ready one, the ingest job, the audit event,
    all in one transaction (the job is published on commit)."""
    with transaction.atomic():
        if dataset is None:
            dataset = dataset_create(project=project, name=name, created_by=created_by)
        version = version_reserve(
            dataset=dataset,
            source=source,
            created_by=created_by,
            source_detail=source_detail,
            parent=latest_ready(dataset),
            upload_key=upload_key,
        )
        _ingest_enqueue(version=version, actor=created_by)
        audit_record(actor=created_by, action=action, project=project, obj=version, data=audit_data)
    return version


def dataset_from_url(
    *, project: Project, name: str, created_by: Any, url: str, dataset: Dataset | None = None
) -> DatasetVersion:
    from mlplatform.netguard import UnsafeURL, check_url

    try:
        check_url(url)  # early, clear 400; the job checks again at fetch time (and every redirect)
    except UnsafeURL as exc:
        raise InvalidInput(str(exc), field="source_url") from None
    return _ingest_version(
        project=project,
        name=name,
        created_by=created_by,
        dataset=dataset,
        source=VersionSource.URL,
        source_detail={"url": url[:2000]},
        action=AuditAction.DATASET_VERSION_URL_IMPORT,
        audit_data={"url": url},
    )


def _ingest_enqueue(*, version: DatasetVersion, actor: Any):
    from jobs.runner import job_enqueue

    return job_enqueue(
        project=version.project,
        kind="dataset.ingest",
        created_by=actor,
        params={"version_id": version.pk},
        target=version,
        message="Waiting for a worker to read the data",
    )


def latest_ready(dataset: Dataset) -> DatasetVersion | None:
    return dataset.versions.filter(status=VersionStatus.READY).order_by("-number").first()


def rows_append(*, dataset: Dataset, rows: Any, actor: Any) -> DatasetVersion:
    """A new version: the latest ready version's rows plus `rows` (same columns)."""
    from datasets.ingest import IngestError, rows_to_frame
    from datasets.selectors import version_frame

    if not isinstance(rows, list) or not rows:
        raise InvalidInput("Send a non-empty list of row objects.", field="rows")
    if len(rows) > 100_000:
        raise InvalidInput("At most 100000 rows per request.", field="rows")
    try:
        new = rows_to_frame(rows)
    except IngestError as exc:
        raise InvalidInput(str(exc), field="rows") from None
    parent = latest_ready(dataset)
    if parent is not None:
        base = version_frame(parent)
        unknown = [c for c in new.columns if c not in base.columns]
        if unknown:
            raise InvalidInput(f"Unknown column {unknown[0]!r}; the dataset's columns are fixed.", field="rows")
        for c in base.columns:
            if c not in new.columns:
                new[c] = None
        new = new[list(base.columns)]
        for c in base.columns:
            try:
                if pd.api.types.is_numeric_dtype(base[c]) and not pd.api.types.is_bool_dtype(base[c]):
                    new[c] = pd.to_numeric(new[c], errors="raise")
                    if pd.api.types.is_integer_dtype(base[c]) and new[c].isna().any():
                        base[c] = base[c].astype("float64")
                elif pd.api.types.is_datetime64_any_dtype(base[c]):
                    new[c] = pd.to_datetime(new[c], errors="raise", format="mixed")
                else:
                    new[c] = new[c].astype(base[c].dtype)
            except (ValueError, TypeError):
                raise InvalidInput(
                    f"Column {c!r}: a value does not match the column's type ({base[c].dtype}).", field="rows"
                ) from None
        frame = pd.concat([base, new], ignore_index=True)
    else:
        frame = new
    try:
        frame = validate_frame(frame)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="rows") from None
    version = version_create_from_frame(
        dataset=dataset,
        frame=frame,
        source=VersionSource.APPEND,
        created_by=actor,
        parent=parent,
        source_detail={"appended_rows": len(new)},
    )
    DatasetVersion.objects.filter(pk=version.pk).update(target_column=parent.target_column if parent else "")
    version.refresh_from_db()
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_VERSION_APPENDED,
        project=dataset.project,
        obj=version,
        data={"rows": len(new)},
    )
    return version


def version_set_target(*, version: DatasetVersion, target: str, actor: Any) -> DatasetVersion:
    """Choose the target column (class balance, leakage checks) and profile again."""
    target = (target or "").strip()
    if target and target not in [c["name"] for c in version.schema]:
        raise InvalidInput(f"No column named {target!r}.", field="target")
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}.", field="target")
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(target_column=target)
        version.refresh_from_db()
        profile_enqueue(version=version, actor=actor)
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_VERSION_TARGET,
            project=version.project,
            obj=version,
            data={"target": target},
        )
    return version


# --- recipes ---------------------------------------------------------------------------------------


def recipe_save(*, project: Project, name: str, steps: Any, actor: Any, dataset: Dataset | None = None):
    """Save steps under `name`: a new version when the name exists (old versions stay)."""
    from datasets.models import Recipe
    from datasets.recipes import RecipeError, validate_steps

    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("A recipe needs a name (at most 120 characters).", field="name")
    try:
        steps = validate_steps(steps)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    if dataset is not None:
        version = latest_ready(dataset)
        if version is not None:
            recipe_check(steps=steps, version=version)
    with transaction.atomic():
        last = Recipe.objects.select_for_update().filter(project=project, name=name).order_by("-version").first()
        recipe = Recipe.objects.create(
            project=project,
            dataset=dataset or (last.dataset if last else None),
            name=name,
            version=(last.version + 1) if last else 1,
            steps=steps,
            created_by=actor,
        )
        audit_record(
            actor=actor, action=AuditAction.RECIPE_SAVED, project=project, obj=recipe, data={"version": recipe.version}
        )
    return recipe


def recipe_check(*, steps: list[dict], version: DatasetVersion) -> None:
    """Compile against a sample of the version's columns: a missing column is a 400 naming it."""
    from datasets.recipes import RecipeError, compile_recipe
    from datasets.selectors import version_sample

    sample = version_sample(version, rows=500)
    try:
        compile_recipe(steps, frame=sample, target=version.target_column)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
