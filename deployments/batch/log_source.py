"""A batch's predictions for monitoring: what the batch job keeps of each scored chunk (an Arrow
file, no per-row work) and how the logging job puts them in the monitoring store.

With the columnar store (PostgreSQL, the default) each chunk becomes one Parquet segment, its
PredictionSegment row committed with `segment_only_rows`: no Prediction row per batch prediction
(the output file carries no prediction id, so nothing looks one up; traffic counts add the
segments' counts). Without it, a child job COPYs Prediction rows with their inputs as JSON
(LOG_CONNECTIONS chunks at once, each on its own connection, one transaction per chunk). The
embedded SQLite mode logs in the job's own thread with bulk_create. One file per chunk: CSV
chunks may type a column differently.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from deployments import prediction_store
from deployments.batch.arrow_json import (
    json_labels,
    json_objects,
    json_probabilities,
    uuid7_raw,
    uuid7_strings,
)
from deployments.batch.output import LocalFile
from deployments.ml import columnar
from deployments.models import (
    LATER_COLUMNS,
    LOGGED_NAMES,
    Deployment,
    ModelVersion,
    Prediction,
    PredictionSegment,
    ReviewItem,
)
from jobs.models import Job
from mlplatform.concurrency import Background

LOG_CONNECTIONS = 2  # chunks COPYed at once, each on its own connection (PostgreSQL parses in its own process)
# COPY needs every NOT NULL column without a database default: the logged ones and actual_source.
COPY_COLUMNS = (*LOGGED_NAMES, "actual_source")


@dataclass
class LogChunk:
    inputs: pa.Table  # the feature columns of the rows that were scored, as received
    labels: np.ndarray
    conf: np.ndarray | None
    proba: np.ndarray | None
    latency_ms: float


@dataclass
class LogTarget:
    deployment: Deployment
    version: ModelVersion
    job: Job
    classes: list[str]
    threshold: float | None = None  # the decision threshold that decided the batch's labels

    @property
    def caller(self) -> str:
        return f"job:{self.job.pk}"


def log_table(target: LogTarget, chunk: LogChunk, now: Any) -> pa.Table:
    """The Prediction rows of a chunk as an Arrow table in COPY_COLUMNS order (JSON columns as text)."""
    n = chunk.inputs.num_rows
    columns = {
        "id": pa.array(uuid7_strings(n), type=pa.string()),
        "project_id": pa.repeat(target.deployment.project_id, n),
        "deployment_id": pa.repeat(target.deployment.pk, n),
        "model_version_id": pa.repeat(target.version.pk, n),
        "source": pa.repeat("batch", n),
        "inputs": json_objects(chunk.inputs),
        "prediction": json_labels(chunk.labels),
        "confidence": pa.array(chunk.conf, type=pa.float64()) if chunk.conf is not None else pa.nulls(n, pa.float64()),
        "probabilities": json_probabilities(chunk.proba, target.classes)
        if chunk.proba is not None
        else pa.nulls(n, pa.string()),
        "decision_threshold": pa.repeat(target.threshold, n)
        if target.threshold is not None and chunk.proba is not None
        else pa.nulls(n, pa.float64()),
        "status": pa.repeat("accepted", n),
        "caller": pa.repeat(target.caller, n),
        "latency_ms": pa.repeat(float(chunk.latency_ms), n),
        "created_at": pa.repeat(now.isoformat(), n),
        "actual_source": pa.repeat(LATER_COLUMNS["actual_source"], n),
    }
    return pa.table({name: columns[name] for name in COPY_COLUMNS})


_JSON_COLUMNS = ("inputs", "prediction", "probabilities")


def _segment_chunk(target: LogTarget, chunk: LogChunk) -> None:
    """PostgreSQL with the columnar store: the chunk's predictions as one segment and its row,
    nothing per prediction in PostgreSQL (the batch output carries no prediction id: nothing looks
    them up one by one). Features, prediction, confidence and probabilities, typed in Arrow."""
    now = timezone.now()
    types, numeric = prediction_store.version_types(target.version.pk)
    table = columnar.frame_table(
        chunk.inputs,
        ids=uuid7_raw(chunk.inputs.num_rows),
        created_at=now,
        model_version_id=target.version.pk,
        source="batch",
        predictions=chunk.labels,
        confidences=chunk.conf,
        types=types,
        prediction_numeric=numeric,
        probabilities=chunk.proba,
    )
    with transaction.atomic():
        prediction_store.segment_write(
            project_id=target.deployment.project_id,
            deployment_id=target.deployment.pk,
            table=table,
            caller=target.caller,
            segment_only=True,
        )


def _copy_chunk(target: LogTarget, chunk: LogChunk) -> None:
    """PostgreSQL without the columnar store: one chunk of Prediction rows (inputs as JSON) through
    COPY, in its own transaction."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(log_table(target, chunk, timezone.now()), sink, pacsv.WriteOptions(include_header=False))
    payload = sink.getvalue()
    table = Prediction._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(memoryview(payload))


def _bulk_create_chunk(target: LogTarget, chunk: LogChunk) -> None:
    """The embedded SQLite mode: the same rows through the ORM."""
    now = timezone.now()
    rows = log_table(target, chunk, now).to_pylist()

    def value(name: str, v: Any) -> Any:
        return json.loads(v) if name in _JSON_COLUMNS and v is not None else v

    with transaction.atomic():
        Prediction.objects.bulk_create(
            [Prediction(**({n: value(n, r[n]) for n in LOGGED_NAMES} | {"created_at": now})) for r in rows],
            batch_size=2000,
        )


LABEL, CONFIDENCE, LATENCY = "__label", "__confidence", "__latency_ms"


def log_source_table(chunk: LogChunk, classes: list[str]) -> pa.Table:
    table = chunk.inputs.append_column(LABEL, pa.array(chunk.labels))
    n = table.num_rows
    table = table.append_column(LATENCY, pa.repeat(float(chunk.latency_ms), n))
    if chunk.conf is not None:
        table = table.append_column(CONFIDENCE, pa.array(chunk.conf, type=pa.float64()))
    if chunk.proba is not None:
        for j in range(len(classes)):
            table = table.append_column(f"__proba_{j}", pa.array(chunk.proba[:, j], type=pa.float64()))
    return table


def log_chunk_from(table: pa.Table, names: list[str], classes: list[str]) -> LogChunk:
    proba_columns = [f"__proba_{j}" for j in range(len(classes))]
    has_proba = bool(classes) and all(c in table.column_names for c in proba_columns)
    return LogChunk(
        inputs=table.select(names),
        labels=table.column(LABEL).to_numpy(zero_copy_only=False),
        conf=table.column(CONFIDENCE).to_numpy() if CONFIDENCE in table.column_names else None,
        proba=np.column_stack([table.column(c).to_numpy() for c in proba_columns]) if has_proba else None,
        latency_ms=float(table.column(LATENCY)[0].as_py()) if table.num_rows else 0.0,
    )


class LogSourceWriter:
    """Stores one Arrow file per scored chunk under the job's prefix; `keys` lists them in order."""

    def __init__(self, job: Job, deployment: Deployment, classes: list[str]):
        self.prefix = f"projects/{deployment.project_id}/batch/{job.pk}-log-{os.urandom(6).hex()}"
        self.classes = classes
        self.keys: list[str] = []

    def write(self, chunk: LogChunk) -> None:
        # Arrow's own file format (lz4): several times cheaper to write than Parquet, read once.
        with tempfile.NamedTemporaryFile(suffix=".arrow", delete=False) as tmp:
            path = tmp.name
        try:
            feather.write_feather(log_source_table(chunk, self.classes), path, compression="lz4")
            name = f"{self.prefix}/{len(self.keys):05d}.arrow"
            with open(path, "rb") as fh:
                self.keys.append(default_storage.save(name, LocalFile(fh, name=path)))
        finally:
            with contextlib.suppress(FileNotFoundError):  # moved into the storage
                os.unlink(path)


def prediction_logger(target: LogTarget) -> Background:
    """A segment per chunk with the columnar store, else COPY on PostgreSQL: LOG_CONNECTIONS chunks
    at once, each thread on its own connection (closed when it ends), one transaction per chunk;
    bulk_create in the job's thread on SQLite."""
    if connection.vendor == "postgresql":
        write = _segment_chunk if prediction_store.enabled() else _copy_chunk
        return Background(
            f"job-{target.job.pk}-log",
            lambda chunk: write(target, chunk),
            threads=LOG_CONNECTIONS,
            on_exit=lambda: connection.close(),  # the thread's own connection
        )
    return Background(f"job-{target.job.pk}-log", lambda chunk: _bulk_create_chunk(target, chunk), synchronous=True)


def logged_count(deployment: Deployment, job: Job) -> int:
    """The predictions `job` logged: its segments' (columnar store) and its Prediction rows (without)."""
    in_segments = PredictionSegment.objects.filter(deployment=deployment, caller=f"job:{job.pk}").aggregate(
        n=Sum("segment_only_rows")
    )["n"]
    rows = Prediction.objects.filter(
        deployment=deployment,
        created_at__gte=job.created_at - timedelta(days=1),
        source="batch",
        caller=f"job:{job.pk}",
    ).count()
    return int(in_segments or 0) + rows


def logged_delete(*, deployment: Deployment, job: Job) -> int:
    """Delete what earlier deliveries of `job` logged, in SQL: Django's delete() would load every row.

    The rows were logged after the job was created; the (deployment, created_at) index finds them
    (a day of margin for clock skew between machines) without scanning the deployment's history.
    """
    logged = Prediction.objects.filter(
        deployment=deployment,
        created_at__gte=job.created_at - timedelta(days=1),
        source="batch",
        caller=f"job:{job.pk}",
    )
    with transaction.atomic():
        prediction_store.segments_delete(
            PredictionSegment.objects.filter(deployment=deployment, caller=f"job:{job.pk}")
        )
        ReviewItem.objects.filter(prediction__in=logged).delete()  # batch rows get none; the FK says they could
        sql, params = logged.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE id IN ({sql})", params)
            return cursor.rowcount
