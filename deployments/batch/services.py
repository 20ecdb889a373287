"""Batch inference: stream a file or a dataset version through a deployment's model.

Memory stays bounded whatever the input size: Parquet is read one record batch at a time, CSV
with pandas' chunksize. Each chunk is validated and scored, then written with pyarrow (inputs +
prediction + confidence + class probabilities + a per-row error) to a temporary CSV or Parquet
file (`output`), stored under a generated key at the end. The main thread only runs the model
(which releases the GIL): reading, validating and preprocessing the next chunk run on a
prepare thread, writing on a writer thread (`mlplatform.concurrency`).

Predictions are logged for monitoring (source "batch", caller "job:<id>") by a child job,
`deployment.batch_log` (`log_source`): the output is downloadable as soon as the scoring is done.
With the columnar store (PostgreSQL) they go to one segment per chunk and no Prediction row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from threadpoolctl import threadpool_limits

from datasets.models import DatasetVersion
from deployments.batch.limits import Counter, upload_check
from deployments.batch.log_source import (
    LogChunk,
    LogSourceWriter,
    LogTarget,
    log_chunk_from,
    logged_count,
    logged_delete,
    prediction_logger,
)
from deployments.batch.output import LocalFile, OutputWriter
from deployments.events import batch_started_event
from deployments.ml import fastpath, scoring
from deployments.ml import schema as schema_core
from deployments.models import Deployment, DeploymentStatus, ModelVersion
from deployments.serving.selectors import model_for
from jobs.models import Job
from jobs.runner import JobContext, job_enqueue
from mlplatform.concurrency import Ahead, Background
from mlplatform.errors import Gone, InvalidInput, PayloadTooLarge, Unavailable

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
BATCH_JOB = "deployment.batch"
BATCH_LOG_JOB = "deployment.batch_log"


# --- starting a batch ---------------------------------------------------------------------------------


def _sniff_format(upload: Any) -> str:
    head = upload.read(4)
    upload.seek(0)
    name = (getattr(upload, "name", "") or "").lower()
    if head == b"PAR1":
        return "parquet"
    if name.endswith((".parquet", ".pq")):
        raise InvalidInput("The file is not a valid Parquet file.", field="file")
    return "csv"


def batch_start(
    *,
    deployment: Deployment,
    actor: Any,
    upload: Any = None,
    dataset_version: Any = None,
    output_format: str = "csv",
    log_predictions: bool = True,
):
    """Start a batch inference job over an uploaded CSV / Parquet file or a dataset version."""
    if output_format not in ("csv", "parquet"):
        raise InvalidInput("Choose csv or parquet.", field="output_format")
    if (upload is None) == (dataset_version is None):
        raise InvalidInput("Send either a file or a dataset version.", field="file")
    if deployment.status == DeploymentStatus.RETIRED:
        raise Gone(f"The deployment “{deployment.name}” was retired and no longer scores.", field="deployment")
    if deployment.status != DeploymentStatus.ACTIVE:
        raise Unavailable(f"The deployment “{deployment.name}” is paused.")
    params: dict[str, Any] = {
        "deployment_id": deployment.pk,
        "model_version_id": deployment.model_version_id,
        # The decision threshold in force when the batch was asked for decides all its rows.
        "decision_threshold": deployment.active_threshold,
        "output_format": output_format,
        "log_predictions": bool(log_predictions),
    }
    if upload is not None:
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"The file is larger than {settings.MAX_UPLOAD_BYTES:,} bytes.", field="file")
        if upload.size == 0:
            raise InvalidInput("The file is empty.", field="file")
        fmt = _sniff_format(upload)
        upload_check(upload, fmt)  # the ingest limits: 413 naming the file before any job
        _check_columns(_upload_columns(upload, fmt), deployment.model_version.input_schema, field="file")
        key = default_storage.save(f"projects/{deployment.project_id}/batch-inputs/{uuid.uuid4().hex}.{fmt}", upload)
        params.update(input_key=key, input_format=fmt)
    else:
        if dataset_version.project_id != deployment.project_id:
            raise InvalidInput("No such dataset version in this project.", field="dataset_version")
        if not dataset_version.storage_key:
            raise InvalidInput("This dataset version has no data yet.", field="dataset_version")
        columns = [c.get("name") for c in dataset_version.schema or []]
        if columns:
            _check_columns(columns, deployment.model_version.input_schema, field="dataset_version")
        params["dataset_version_id"] = dataset_version.pk
    with transaction.atomic():
        job = job_enqueue(
            project=deployment.project,
            kind=BATCH_JOB,
            created_by=actor,
            params=params,
            target=deployment,
            message="Batch inference waiting for a worker",
        )
        batch_started_event(actor=actor, deployment=deployment, job_id=job.pk, output_format=output_format)
    return job


def _upload_columns(upload: Any, fmt: str) -> list[str]:
    """The file's column names, from its Parquet footer or its CSV header line only."""
    try:
        if fmt == "parquet":
            return [str(n) for n in pq.ParquetFile(upload).schema_arrow.names]
        return [str(c) for c in pd.read_csv(upload, nrows=0).columns]
    except (pa.ArrowException, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"The file's header cannot be read: {exc}", field="file") from None
    finally:
        upload.seek(0)


def _check_columns(columns: list[str], schema: list[dict[str, Any]], *, field: str) -> None:
    """Refuse, before any job, a file without every feature the model needs, naming the missing
    columns and the ones the model does not use (those are copied to the output as they are)."""
    present = set(columns)
    missing = [f["name"] for f in schema if f["name"] not in present]
    if not missing:
        return
    needed = {f["name"] for f in schema}
    unknown = [c for c in columns if c not in needed]
    message = f"Missing column{'s' if len(missing) > 1 else ''} the model needs: {', '.join(missing[:20])}."
    if unknown:
        message += f" Columns the model does not use (check their names): {', '.join(unknown[:20])}."
    raise InvalidInput(message, field=field)


# --- reading ----------------------------------------------------------------------------------


def _chunks(job: Job, schema: list[dict[str, Any]]):
    """(Arrow table, pandas frame, fraction done) per chunk of the input."""
    p = job.params
    if p.get("dataset_version_id"):
        dv = DatasetVersion.objects.get(pk=p["dataset_version_id"])
        key, fmt = dv.storage_key, "parquet"
    else:
        key, fmt = p["input_key"], p["input_format"]
    counter = Counter()  # rows and decoded bytes against the ingest limits, chunk by chunk
    with default_storage.open(key, "rb") as fh:
        if fmt == "parquet":
            pf = pq.ParquetFile(fh)
            total = max(1, pf.metadata.num_rows)
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
                table = pa.Table.from_batches([batch])
                counter.add(table)
                yield table, table.to_pandas(), counter.rows / total
        else:
            size = max(1, default_storage.size(key))
            text_cols = {
                f["name"]: str
                for f in schema
                if f["type"] in ("categorical", "text") and f.get("dtype") in ("object", "str", "string")
            }
            for frame in pd.read_csv(fh, chunksize=CHUNK_ROWS, dtype=text_cols, low_memory=False):
                table = _arrow(frame)
                counter.add(table)
                yield table, frame, min(0.99, fh.tell() / size)


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A CSV chunk as Arrow; object columns of mixed types (a number among strings) as text."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mixed = {c: "string" for c in frame.columns if pd.api.types.is_object_dtype(frame[c])}
        return pa.Table.from_pandas(frame.astype(mixed), preserve_index=False)


# --- scoring -----------------------------------------------------------------------------------


def _scored_table(
    table: pa.Table,
    *,
    ok: np.ndarray,
    row_errors: np.ndarray,
    labels: np.ndarray | None,
    conf: np.ndarray | None,
    proba: np.ndarray | None,
    classes: list[str],
    task_type: str,
    fmt: str,
    with_proba: bool,
) -> pa.Table:
    """The input columns + prediction, confidence, proba_<class>..., error (refused rows: nulls)."""
    n = table.num_rows
    added = {"prediction", "confidence", "error"} | {f"proba_{c}" for c in classes}
    keep = [c for c in table.column_names if c not in added]
    if len(keep) != table.num_columns:
        table = table.select(keep)
    missing = ~ok
    all_ok = bool(ok.all())
    if labels is None:
        prediction = pa.nulls(n, pa.string() if task_type == "classification" else pa.float64())
    elif task_type == "classification":
        full = np.empty(n, dtype=object)
        full[ok] = labels
        prediction = pa.array(full if not all_ok else labels, from_pandas=True)
        if fmt == "parquet" and not pa.types.is_string(prediction.type):
            prediction = prediction.cast(pa.string())
    else:
        full = np.full(n, np.nan)
        full[ok] = np.asarray(labels, dtype=np.float64)
        prediction = pa.array(full, mask=missing)

    def spread(values: np.ndarray | None) -> pa.Array:
        if values is None:
            return pa.nulls(n, pa.float64())
        if all_ok:
            return pa.array(values, type=pa.float64())
        full = np.full(n, np.nan)
        full[ok] = values
        return pa.array(full, mask=missing)

    table = table.append_column("prediction", prediction).append_column("confidence", spread(conf))
    if with_proba:  # every chunk has the same columns, even one whose rows were all refused
        for j, cls in enumerate(classes):
            table = table.append_column(f"proba_{cls}", spread(proba[:, j] if proba is not None else None))
    return table.append_column("error", pa.array(row_errors, type=pa.string()))


@dataclass
class Prepared:
    table: pa.Table  # the chunk as read
    ok: np.ndarray  # rows that passed validation
    row_errors: np.ndarray
    scorer: Any  # what scores `features`: the compiled path's final estimator, or the pipeline
    features: Any  # the model's input for the ok rows (None when none is ok)
    fraction: float
    prepare_ms: float


def _prepared(job: Job, deployment: Deployment, schema: list[dict[str, Any]], model: Any, compiled: Any):
    """Each chunk read, validated and (on the compiled path) preprocessed into the model's matrix."""
    names = [f["name"] for f in schema]
    try:
        for table, frame, fraction in _chunks(job, schema):
            started = time.perf_counter()
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise ValueError(f"The input lacks feature columns: {', '.join(missing[:10])}")
            X, row_errors = schema_core.validate_frame(
                frame,
                schema,
                unknown_policy=deployment.unknown_category_policy,
                allow_missing=deployment.allow_missing,
            )
            del frame
            ok = row_errors == ""
            scorer = features = None
            if ok.any():
                Xok = X if ok.all() else X[ok]
                scorer, features = model, Xok
                if compiled is not None:
                    columns = fastpath.columns_of(Xok)
                    if fastpath.same_as_pipeline(compiled, Xok, columns):
                        scorer, features = compiled.final, compiled.matrix(columns)
                    else:
                        log.warning("batch %s: compiled scoring differs on this chunk; scikit-learn from here", job.pk)
                        compiled = None
            yield Prepared(table, ok, row_errors, scorer, features, fraction, (time.perf_counter() - started) * 1000)
    finally:
        connection.close()  # this thread's own connection (the dataset version lookup)


def _compiled(version: ModelVersion, model: Any, deployment: Deployment) -> fastpath.CompiledModel | None:
    """The compiled scoring path (deployments/fastpath.py), proven on generated rows; each chunk's
    first rows are also scored both ways before the chunk is trusted to it."""
    if not settings.SERVING_COMPILED:
        return None
    validator = schema_core.compile_validator(
        version.input_schema, unknown_policy=deployment.unknown_category_policy, allow_missing=deployment.allow_missing
    )
    return fastpath.compiled_for(version, model, validator)


# --- the jobs ----------------------------------------------------------------------------------------


@dataclass
class _Totals:
    rows: int = 0
    errors: int = 0


def _score_all(
    job: Job,
    ctx: JobContext,
    prepared: Ahead,
    version: ModelVersion,
    *,
    write: Any,
    log_put: Any,
    fmt: str,
    with_proba: bool,
    classes: list[str],
) -> _Totals:
    """Score each prepared chunk, hand it to the writer and (when logging) to the log source."""
    names = [f["name"] for f in version.input_schema]
    totals = _Totals()
    # The main thread only runs the model (which releases the GIL): reading, validating and
    # preprocessing the next chunk run on the prepare thread, writing on the writer thread.
    with threadpool_limits(settings.BATCH_SCORING_THREADS):
        for chunk in prepared:
            started = time.perf_counter()
            table, ok, row_errors = chunk.table, chunk.ok, chunk.row_errors
            labels = conf = proba = None
            if chunk.features is not None:
                labels, conf, proba = scoring.score_arrays(
                    chunk.scorer,
                    chunk.features,
                    task_type=version.task_type,
                    threshold=job.params.get("decision_threshold"),
                    positive=version.positive_class,
                )
            elapsed = (time.perf_counter() - started) * 1000 + chunk.prepare_ms
            write(
                _scored_table(
                    table,
                    ok=ok,
                    row_errors=row_errors,
                    labels=labels,
                    conf=conf,
                    proba=proba,
                    classes=classes,
                    task_type=version.task_type,
                    fmt=fmt,
                    with_proba=with_proba,
                )
            )
            if log_put is not None and labels is not None:
                inputs = table.select(names)
                log_put(
                    LogChunk(
                        inputs=inputs if ok.all() else inputs.filter(pa.array(ok)),
                        labels=labels,
                        conf=conf,
                        proba=proba,
                        latency_ms=elapsed / max(1, int(ok.sum())),
                    )
                )
            totals.rows += table.num_rows
            totals.errors += int((~ok).sum())
            ctx.progress(2 + 96 * chunk.fraction, f"{totals.rows:,} rows scored ({totals.errors:,} refused)", log=False)
    return totals


def batch_run(*, job: Job, ctx: JobContext) -> dict[str, Any]:
    """The `deployment.batch` job: score the input into the output file, then queue its logging.

    A re-delivered job starts over (what an earlier attempt logged is deleted first).
    """
    p = job.params
    deployment = Deployment.objects.select_related("project").get(pk=p["deployment_id"])
    version = ModelVersion.objects.get(pk=p["model_version_id"])
    logged_delete(deployment=deployment, job=job)
    ctx.progress(1, f"Loading model version {version.version}")
    model = model_for(version)
    compiled = _compiled(version, model, deployment)
    classes = [str(c) for c in (version.classes or getattr(model, "classes_", []))]
    with_proba = version.task_type == "classification" and hasattr(model, "predict_proba")
    fmt = p.get("output_format", "csv")
    tmp = tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False)
    tmp.close()
    source = LogSourceWriter(job, deployment, classes) if p.get("log_predictions", True) else None
    logger = Background(f"job-{job.pk}-log-source", source.write) if source is not None else None
    out = OutputWriter(tmp.name, fmt)
    writer = Background(f"job-{job.pk}-write", out.write)  # pyarrow writes while the next chunk is scored
    prepared = Ahead(f"job-{job.pk}-prepare", lambda: _prepared(job, deployment, version.input_schema, model, compiled))
    try:
        totals = _score_all(
            job,
            ctx,
            prepared,
            version,
            write=writer.put,
            log_put=logger.put if logger else None,
            fmt=fmt,
            with_proba=with_proba,
            classes=classes,
        )
        writer.close()
        out.close()
        if logger is not None:
            logger.close()  # every chunk's log source stored before the logging job is queued
        name = f"projects/{deployment.project_id}/batch/{job.pk}-{os.urandom(6).hex()}.{fmt}"
        with open(tmp.name, "rb") as fh:
            key = default_storage.save(name, LocalFile(fh, name=tmp.name))
    finally:
        prepared.close()
        writer.abort()
        if logger is not None:
            logger.abort()
        out.close()
        with contextlib.suppress(FileNotFoundError):  # moved into the storage
            os.unlink(tmp.name)
    result = {
        "output_key": key,
        "output_format": fmt,
        "rows": totals.rows,
        "errors": totals.errors,
        "model_version": version.version,
    }
    if source is not None:
        with transaction.atomic():
            log_job = job_enqueue(
                project=deployment.project,
                kind=BATCH_LOG_JOB,
                created_by=job.created_by,
                params={"batch_job_id": job.pk, "keys": source.keys, "classes": classes},
                target=deployment,
                parent=job,
                message="Waiting for a worker to log the batch's predictions for monitoring",
            )
        result["logging_job_id"] = log_job.pk
    done = f"Done: {totals.rows:,} rows, {totals.errors:,} refused"
    ctx.progress(100, done + ("; logging them for monitoring" if source else ""))
    return result


def batch_log_run(*, job: Job, ctx: JobContext) -> dict[str, Any]:
    """The `deployment.batch_log` job: a batch's predictions into the monitoring store (a segment
    per chunk, or Prediction rows without the columnar store; source "batch", caller
    "job:<batch id>"); succeeds only once every chunk is committed."""
    p = job.params
    batch = Job.objects.get(pk=p["batch_job_id"])
    deployment = Deployment.objects.select_related("project").get(pk=batch.params["deployment_id"])
    version = ModelVersion.objects.get(pk=batch.params["model_version_id"])
    names = [f["name"] for f in version.input_schema]
    classes = p["classes"]
    if not all(default_storage.exists(key) for key in p["keys"]):
        # The files go only once every chunk is committed: an earlier delivery finished the work.
        return {"logged": logged_count(deployment, batch), "batch_job_id": batch.pk}
    logged_delete(deployment=deployment, job=batch)  # a re-delivered job starts over
    threshold = batch.params.get("decision_threshold") if len(classes) == 2 else None
    logger = prediction_logger(LogTarget(deployment, version, batch, classes, threshold))
    rows = 0
    try:
        for i, key in enumerate(p["keys"]):
            with default_storage.open(key, "rb") as fh:
                table = feather.read_table(fh)
            rows += table.num_rows
            logger.put(log_chunk_from(table, names, classes))
            ctx.progress(1 + 98 * (i + 1) / max(1, len(p["keys"])), f"{rows:,} predictions logged", log=False)
        logger.close()  # every chunk committed before the job can succeed
    finally:
        logger.abort()
    for key in p["keys"]:
        default_storage.delete(key)
    ctx.progress(100, f"{rows:,} predictions logged for monitoring")
    return {"logged": rows, "batch_job_id": batch.pk}


def batch_files_expire(*, now: Any = None) -> dict[str, int]:
    """Delete the input and output files of batch jobs that finished more than
    `BATCH_FILE_RETENTION_DAYS` ago (the hourly housekeeping). The job keeps its counts and its
    logged predictions; its result records when the files went (`files_expired_at`), so the
    download says 410 with the reason instead of a missing file."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.BATCH_FILE_RETENTION_DAYS)
    jobs = Job.objects.filter(kind=BATCH_JOB, finished_at__lt=cutoff).exclude(result__has_key="files_expired_at")
    expired = files = 0
    for job in jobs.only("pk", "params", "result").iterator(chunk_size=200):
        keys = [k for k in ((job.params or {}).get("input_key"), (job.result or {}).get("output_key")) if k]
        for key in keys:
            if default_storage.exists(key):
                default_storage.delete(key)
                files += 1
        result = dict(job.result or {})
        result.pop("output_key", None)
        result["files_expired_at"] = now.isoformat()
        Job.objects.filter(pk=job.pk).update(result=result)
        expired += 1
    return {"batch_jobs_expired": expired, "batch_files_deleted": files}


def batch_output_gone(job: Job) -> None:
    """410 for the download of a batch job whose files retention deleted."""
    when = (job.result or {}).get("files_expired_at")
    if when:
        raise Gone(
            f"This batch job's files were deleted on {when[:10]}, {settings.BATCH_FILE_RETENTION_DAYS} days after it "
            "finished (BATCH_FILE_RETENTION_DAYS); its counts and logged predictions remain.",
            field="job",
        )
