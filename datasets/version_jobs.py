"""The work of the datasets app's jobs: reading data into a version, and profiling a version.

Both are idempotent: a redelivered ingest finds the version already filled (storage_key set)
and only makes sure a profile is coming; a redelivered profile recomputes and overwrites.
A failure marks the version `failed` with a message naming the problem; other versions of
the dataset are never touched. Whatever ends a job without success (an exception nobody
expected, retries spent, a worker killed on every attempt, a cancel) reaches
`version_jobs.version_failed` through the runner's `on_failure` hook: no version stays "processing".
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from datasets import services
from datasets.ingest import IngestError, Limits, prepare, read_table
from datasets.models import DatasetVersion, VersionSource, VersionStatus
from datasets.profiling import profile_frame
from jobs.models import Job
from jobs.runner import JobContext, RetryableError
from mlplatform import netguard
from mlplatform.errors import DomainError


class DataProblem(Exception):
    """Bad data: the job fails with this message (no retry)."""


def version_failed(job: Job, error: str) -> None:
    """The runner's on_failure hook: a version still processing when its job ends without
    success is failed with the job's error (a ready version keeps its data and profile)."""
    failed = DatasetVersion.objects.filter(pk=job.params.get("version_id"), status=VersionStatus.PROCESSING).update(
        status=VersionStatus.FAILED, error=(error or "The job failed.")[:5000]
    )
    version = DatasetVersion.objects.filter(pk=job.params.get("version_id")).first()
    if failed and version is not None and not version.storage_key:
        _drop_upload(version)


def limits() -> Limits:
    return Limits(
        max_rows=settings.MAX_ROWS,
        max_columns=settings.MAX_COLUMNS,
        max_bytes=settings.MAX_TABLE_BYTES,
        max_depth=settings.MAX_JSON_DEPTH,
    )


def profile_size_check(profile: dict) -> None:
    """A profile is stored in one row and sent to every page that shows the version: capped."""
    size = len(json.dumps(profile, cls=DjangoJSONEncoder, separators=(",", ":")))
    if size > settings.PROFILE_MAX_BYTES:
        raise DataProblem(
            f"The profile is {size} bytes; the limit is {settings.PROFILE_MAX_BYTES} (PROFILE_MAX_BYTES). "
            "Drop columns (long free text, many columns) and try again."
        )


def _fetch_url(url: str) -> bytes:
    try:
        response = netguard.safe_request(
            "GET", url, timeout=settings.URL_FETCH_TIMEOUT_SECONDS, max_bytes=settings.URL_FETCH_MAX_BYTES
        )
    except netguard.Refused as exc:
        raise DataProblem(f"URL refused: {exc}") from None
    except netguard.FetchFailed as exc:
        raise DataProblem(f"Download failed: {exc}") from None
    if response.status >= 400:
        raise DataProblem(f"Download failed: the server answered HTTP {response.status}.")
    return response.body


def _run_sql(version: DatasetVersion, *, last_attempt: bool) -> pd.DataFrame:
    from datasets.connections import QueryFailed, query_frame

    detail = version.source_detail
    try:
        return query_frame(project=version.project, connection=detail.get("connection", ""), query=detail["query"])
    except DomainError as exc:
        raise DataProblem(exc.message) from None
    except netguard.Refused as exc:
        raise DataProblem(f"Connection refused: {exc}") from None
    except netguard.ConnectFailed as exc:
        if not last_attempt:  # perhaps a passing outage: the runner retries
            raise RetryableError(str(exc)) from None
        raise DataProblem(str(exc)) from None
    except QueryFailed as exc:
        raise DataProblem(str(exc)) from None


def _drop_upload(version: DatasetVersion) -> None:
    # The raw upload is not kept once parsed (or refused): the Parquet file is the record.
    if version.upload_key and default_storage.exists(version.upload_key):
        default_storage.delete(version.upload_key)


def ingest_run(*, version_id: int, last_attempt: bool, ctx: JobContext) -> dict[str, Any]:
    """The `dataset.ingest` job: read the upload, URL or query, profile it, store it as Parquet."""
    version = DatasetVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None:
        return {"skipped": "version deleted"}
    if version.storage_key:  # a redelivery after the data was stored
        if version.status == VersionStatus.PROCESSING:
            services.profile_enqueue(version=version, actor=version.created_by)
        return {"version": version.pk, "already": True}
    if version.status == VersionStatus.FAILED:
        return {"version": version.pk, "failed": version.error}
    data: bytes | None = None
    try:
        ctx.progress(5, "Reading the data")
        if version.source == VersionSource.UPLOAD:
            with default_storage.open(version.upload_key, "rb") as fh:
                data = fh.read()
            frame, meta = read_table(data, limits())
        elif version.source == VersionSource.URL:
            ctx.progress(5, "Downloading")
            data = _fetch_url(version.source_detail.get("url", ""))
            ctx.progress(30, f"Downloaded {len(data)} bytes; parsing")
            frame, meta = read_table(data, limits())
        elif version.source == VersionSource.SQL:
            ctx.progress(10, "Running the query (read-only)")
            frame, meta = _run_sql(version, last_attempt=last_attempt), {"format": "sql"}
        else:
            raise DataProblem(f"Nothing to ingest for a {version.source} version.")
        del data
        ctx.progress(40, f"Parsed {len(frame)} rows x {frame.shape[1]} columns; profiling")
        frame = services.validate_frame(frame)
        # Profiled here, on the frame already in memory, rather than by a second job that would
        # read the Parquet back: the row hashes serve both the content hash and the duplicates.
        ready = prepare(
            frame,
            target=version.target_column,
            task=version.project.task_type,
            objective=version.project.objective,
        )
        profile_size_check(ready.profile)
        ctx.progress(80, "Storing as Parquet")
        with transaction.atomic():
            DatasetVersion.objects.filter(pk=version.pk).update(source_detail={**version.source_detail, **meta})
        services.version_fill(
            version=version, frame=frame, profile=ready.profile, hashes=ready.hashes, parquet=ready.parquet
        )
    except (IngestError, DataProblem) as exc:
        services.version_fail(version=version, error=str(exc))
        _drop_upload(version)
        raise DataProblem(str(exc)) from None
    except DomainError as exc:
        services.version_fail(version=version, error=exc.message)
        _drop_upload(version)
        raise DataProblem(exc.message) from None
    _drop_upload(version)
    return {"version": version.pk, "rows": len(frame), **meta}


def profile_run(*, version_id: int, ctx: JobContext) -> dict[str, Any]:
    """The `dataset.profile` job: profile the rows exploration may see (the locked test rows stay out)."""
    from datasets.selectors import visible_rows

    version = DatasetVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None or version.status == VersionStatus.FAILED:
        return {"skipped": True}
    try:
        ctx.progress(10, "Loading the version")
        # After a split the locked test rows stay out of exploration too.
        frame, _ = visible_rows(version)
        ctx.progress(30, f"Profiling {len(frame)} rows")
        result = profile_frame(
            frame,
            target=version.target_column,
            task=version.project.task_type,
            objective=version.project.objective,
        )
        profile_size_check(result)
    except (DomainError, ValueError, KeyError, DataProblem) as exc:
        message = getattr(exc, "message", None) or str(exc)
        services.version_fail(version=version, error=f"Profiling failed: {message}")
        raise DataProblem(f"Profiling failed: {message}") from None
    ctx.progress(90, "Saving the profile")
    warnings = result.pop("warnings")
    with transaction.atomic():
        current = DatasetVersion.objects.select_for_update().get(pk=version.pk)
        kept = [w for w in current.warnings if str(w.get("kind", "")).startswith("split_")]
        current.profile = result
        current.warnings = warnings + kept
        current.status = VersionStatus.READY
        current.error = ""
        current.save(update_fields=["profile", "warnings", "status", "error"])
    return {"version": version.pk, "warnings": len(warnings)}
