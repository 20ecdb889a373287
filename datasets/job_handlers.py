"""Jobs of the datasets app: reading data into a version, and profiling a version.

Both are idempotent: a redelivered ingest finds the version already filled (storage_key set)
and only makes sure a profile is coming; a redelivered profile recomputes and overwrites.
A failure marks the version `failed` with a message naming the problem; other versions of
the dataset are never touched.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from datasets import services
from datasets.ingest import IngestError, prepare, read_table
from datasets.models import DatasetVersion, VersionSource, VersionStatus
from datasets.profiling import profile_frame
from datasets.split_jobs import split_job  # noqa: F401 - registers the dataset.split job
from jobs.models import Job
from jobs.runner import JobContext, RetryableError, job_handler
from mlplatform.errors import DomainError

SQL_MAX_ROWS = 5_000_000


class DataProblem(Exception):
    """Bad data: the job fails with this message (no retry)."""


def _fail(version: DatasetVersion, message: str) -> None:
    services.version_fail(version=version, error=message)


def _fetch_url(url: str) -> bytes:
    from mlplatform.netguard import FetchFailed, UnsafeURL, safe_request

    try:
        response = safe_request(
            "GET", url, timeout=settings.URL_FETCH_TIMEOUT_SECONDS, max_bytes=settings.URL_FETCH_MAX_BYTES
        )
    except UnsafeURL as exc:
        raise DataProblem(f"URL refused: {exc}") from None
    except FetchFailed as exc:
        raise DataProblem(f"Download failed: {exc}") from None
    if response.status >= 400:
        raise DataProblem(f"Download failed: the server answered HTTP {response.status}.")
    return response.body


def _run_sql(version: DatasetVersion) -> pd.DataFrame:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    detail = version.source_detail
    try:
        dsn = services.sql_connection_dsn(project=version.project, name=detail.get("connection", ""))
    except DomainError as exc:
        raise DataProblem(exc.message) from None
    url = make_url(dsn)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url, pool_pre_ping=False, poolclass=None)
    try:
        with engine.connect() as conn:
            # Read-only at the database level, whatever the query says; plus a time limit.
            if url.get_backend_name() == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
                conn.execute(text(f"SET LOCAL statement_timeout = {int(settings.URL_FETCH_TIMEOUT_SECONDS * 1000)}"))
            elif url.get_backend_name() == "mysql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            result = conn.execute(text(detail["query"]))
            rows = result.fetchmany(SQL_MAX_ROWS + 1)
            columns = list(result.keys())
            conn.rollback()
    except DBAPIError as exc:
        if exc.connection_invalidated or "could not connect" in str(exc.orig).lower():
            raise RetryableError(f"Cannot reach the database: {exc.orig}") from None
        raise DataProblem(f"The query failed: {str(exc.orig).strip().splitlines()[0]}") from None
    except SQLAlchemyError as exc:
        raise DataProblem(f"The query failed: {type(exc).__name__}") from None
    finally:
        engine.dispose()
    if len(rows) > SQL_MAX_ROWS:
        raise DataProblem(f"The query returns more than {SQL_MAX_ROWS} rows; add a LIMIT or aggregate.")
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)


def _drop_upload(version: DatasetVersion) -> None:
    # The raw upload is not kept once parsed (or refused): the Parquet file is the record.
    if version.upload_key and default_storage.exists(version.upload_key):
        default_storage.delete(version.upload_key)


@job_handler("dataset.ingest")
def ingest(job: Job, ctx: JobContext) -> dict[str, Any]:
    version = DatasetVersion.objects.select_related("project").filter(pk=job.params["version_id"]).first()
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
            frame, meta = read_table(data)
        elif version.source == VersionSource.URL:
            ctx.progress(5, "Downloading")
            data = _fetch_url(version.source_detail.get("url", ""))
            ctx.progress(30, f"Downloaded {len(data)} bytes; parsing")
            frame, meta = read_table(data)
        elif version.source == VersionSource.SQL:
            ctx.progress(10, "Running the query (read-only)")
            frame, meta = _run_sql(version), {"format": "sql"}
        else:
            raise DataProblem(f"Nothing to ingest for a {version.source} version.")
        del data
        ctx.progress(40, f"Parsed {len(frame)} rows x {frame.shape[1]} columns; profiling")
        frame = services.validate_frame(frame)
        # Profiled here, on the frame already in memory, rather than by a second job that would
        # read the Parquet back: the row hashes serve both the content hash and the duplicates.
        ready = prepare(frame, target=version.target_column, task=version.project.task_type)
        ctx.progress(80, "Storing as Parquet")
        with transaction.atomic():
            DatasetVersion.objects.filter(pk=version.pk).update(source_detail={**version.source_detail, **meta})
        services.version_fill(
            version=version, frame=frame, profile=ready.profile, hashes=ready.hashes, parquet=ready.parquet
        )
    except (IngestError, DataProblem) as exc:
        _fail(version, str(exc))
        _drop_upload(version)
        raise DataProblem(str(exc)) from None
    except DomainError as exc:
        _fail(version, exc.message)
        _drop_upload(version)
        raise DataProblem(exc.message) from None
    _drop_upload(version)
    return {"version": version.pk, "rows": len(frame), **meta}


@job_handler("dataset.profile")
def profile(job: Job, ctx: JobContext) -> dict[str, Any]:
    from datasets.selectors import visible_rows

    version = DatasetVersion.objects.select_related("project").filter(pk=job.params["version_id"]).first()
    if version is None or version.status == VersionStatus.FAILED:
        return {"skipped": True}
    try:
        ctx.progress(10, "Loading the version")
        # After a split the locked test rows stay out of exploration too.
        frame, _ = visible_rows(version)
        ctx.progress(30, f"Profiling {len(frame)} rows")
        result = profile_frame(frame, target=version.target_column, task=version.project.task_type)
    except (DomainError, ValueError, KeyError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        _fail(version, f"Profiling failed: {message}")
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


@job_handler("dataset.clean")
def clean(job: Job, ctx: JobContext) -> dict[str, Any]:
    from datasets.selectors import version_frame

    version = DatasetVersion.objects.select_related("project").filter(pk=job.params["version_id"]).first()
    source = DatasetVersion.objects.filter(pk=job.params["source_id"]).first()
    if version is None or version.storage_key or version.status == VersionStatus.FAILED:
        return {"skipped": True}
    if source is None:
        _fail(version, "The source version no longer exists.")
        raise DataProblem("The source version no longer exists.")
    ctx.progress(10, f"Reading v{source.number}")
    frame = version_frame(source)
    before = len(frame)
    frame = services.apply_cleaning(frame, version.source_detail.get("steps", []))
    ctx.progress(40, f"{before - len(frame)} rows removed; profiling")
    try:
        ready = prepare(services.validate_frame(frame), target=version.target_column, task=version.project.task_type)
        services.version_fill(
            version=version, frame=frame, profile=ready.profile, hashes=ready.hashes, parquet=ready.parquet
        )
    except DomainError as exc:
        _fail(version, exc.message)
        raise DataProblem(exc.message) from None
    return {"version": version.pk, "rows_removed": before - len(frame)}
