"""Batch inference jobs: stream a file or a dataset version through a deployment's model.

Memory stays bounded whatever the input size: Parquet is read one record batch at a time,
CSV with pandas' chunksize. Each chunk is validated and scored, then written with pyarrow
(inputs + prediction + confidence + class probabilities + a per-row error) to a temporary
CSV or Parquet file, which is stored under a generated key at the end.

Predictions are logged for monitoring (source "batch", caller "job:<id>") by a child job,
`deployment.batch_log`: the batch job stores each scored chunk's inputs and outputs as a small
Arrow file (no per-row work) and queues it; the output is downloadable as soon as the scoring
is done. The logging job COPYs the chunks into PostgreSQL, LOG_CONNECTIONS at once on their own
connections, one transaction per chunk, with its own progress; it succeeds only after every chunk
is committed, and a re-delivered one first deletes what an earlier attempt logged. The embedded
SQLite mode logs in the job's own thread with bulk_create.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from threadpoolctl import threadpool_limits

from deployments import fastpath, serving
from deployments.models import Deployment, ModelVersion, Prediction, ReviewItem
from deployments.registry import model_for
from jobs.models import Job
from jobs.runner import JobContext, job_enqueue, job_handler

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
LOG_CONNECTIONS = 2  # chunks COPYed at once, each on its own connection (PostgreSQL parses in its own process)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = "^[=+\\-@\t\r]"
_NEEDS_JSON_ESCAPE_RE = '[\\\\"\x00-\x1f]'
OUTPUT_COLUMNS = ("prediction", "confidence", "error")
LOG_COLUMNS = (
    "id",
    "project_id",
    "deployment_id",
    "model_version_id",
    "source",
    "inputs",
    "prediction",
    "confidence",
    "probabilities",
    "status",
    "latency_ms",
    "caller",
    "actual_source",
    "created_at",
)


def uuid7_strings(n: int) -> np.ndarray:
    """n time-ordered UUIDv7 ids as 32-hex-digit strings, generated without a Python loop."""
    ms = time.time_ns() // 1_000_000
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    ts = np.array([(ms >> (8 * (5 - i))) & 0xFF for i in range(6)], dtype=np.uint8)
    raw[:, :6] = ts
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = binascii.hexlify(raw.tobytes())
    return np.frombuffer(hexed, dtype="S32").astype(str)


# --- vectorised JSON text, one value per row (pyarrow kernels, no per-row Python) ---------------


def _decoded(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _float_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Floats as JSON numbers, written like Python's repr (1.0 stays 1.0); NaN / inf / null -> null."""
    values = values.cast(pa.float64())
    text = pc.replace_substring_regex(values.cast(pa.string()), pattern=r"^(-?\d+)$", replacement=r"\1.0")
    finite = pc.fill_null(pc.is_finite(values), False)
    return pc.if_else(finite, text, pa.scalar("null"))


def _string_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Strings as JSON strings; the rare value with a quote, backslash or control character via json.dumps."""
    values = values.cast(pa.string())
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    special = pc.fill_null(pc.match_substring_regex(values, _NEEDS_JSON_ESCAPE_RE), False)
    if pc.any(special).as_py():
        if isinstance(values, pa.ChunkedArray):
            values, quoted, special = values.combine_chunks(), quoted.combine_chunks(), special.combine_chunks()
        escaped = [json.dumps(v) for v in values.filter(special).to_pylist()]
        quoted = pc.replace_with_mask(quoted, special, pa.array(escaped, type=pa.string()))
    return pc.fill_null(quoted, "null")


def json_values(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The JSON text of each value of a column (null for missing), as a string array."""
    values = _decoded(values)
    t = values.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _float_text(values)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pc.fill_null(values.cast(pa.string()), "null")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _string_text(values)
    if pa.types.is_null(t):
        return pa.array(["null"] * len(values), type=pa.string())
    # Dates, times, lists...: pandas' JSON encoder (ISO dates), value by value. Rare in practice.
    series = pd.Series(values.to_pandas() if hasattr(values, "to_pandas") else values)
    rows = json.loads(series.to_frame().to_json(orient="values", date_format="iso"))
    return pa.array([json.dumps(r[0]) for r in rows], type=pa.string())


def json_objects(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """One JSON object per row of the table: {"column": value, ...}."""
    if table.num_columns == 0:
        return pa.array(["{}"] * table.num_rows, type=pa.string())
    parts: list[Any] = []
    for j, name in enumerate(table.column_names):
        parts.append(("{" if j == 0 else ",") + json.dumps(str(name)) + ":")
        parts.append(json_values(table.column(j)))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def json_labels(labels: np.ndarray) -> pa.Array:
    """Predicted labels as JSON text: numbers as numbers, everything else through json.dumps."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "f":
        return _float_text(pa.array(arr))
    codes, uniques = pd.factorize(pd.Series(arr, dtype=object), use_na_sentinel=False)
    texts = np.array([json.dumps(serving._label(u)) for u in uniques], dtype=object)
    return pa.array(texts[codes], type=pa.string())


def json_probabilities(proba: np.ndarray, classes: list[str]) -> pa.ChunkedArray | pa.Array:
    """{"class": probability rounded to 6 decimals, ...} per row."""
    rounded = np.round(proba, 6)
    parts: list[Any] = []
    for j, cls in enumerate(classes):
        parts.append(("{" if j == 0 else ",") + json.dumps(str(cls)) + ":")
        parts.append(_float_text(pa.array(rounded[:, j])))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


# --- the output file -------------------------------------------------------------------------


def csv_safe(table: pa.Table) -> pa.Table:
    """Strings that a spreadsheet would run as formulas (= + - @ tab CR first) get a leading apostrophe."""
    for j, field in enumerate(table.schema):
        col = _decoded(table.column(j))
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            if col.type != field.type:
                table = table.set_column(j, pa.field(field.name, col.type), col)
            continue
        col = col.cast(pa.string())  # pandas writes large_string
        risky = pc.fill_null(pc.match_substring_regex(col, _FORMULA_RE), False)
        if pc.any(risky).as_py():
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        table = table.set_column(j, pa.field(field.name, col.type), col)
    return table


def _csv_writable(table: pa.Table) -> pa.Table:
    """Columns pyarrow's CSV writer cannot write (lists, structs...) as their JSON text."""
    for j, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_nested(t) or (pa.types.is_dictionary(t) and not pa.types.is_string(t.value_type)):
            table = table.set_column(j, pa.field(field.name, pa.string()), json_values(table.column(j)))
    return table


class OutputWriter:
    """Appends scored chunks to a local CSV (formula-safe) or Parquet file."""

    def __init__(self, path: str, fmt: str):
        self.fmt = fmt
        self._fh = open(path, "wb")  # closed in close()
        self._parquet: pq.ParquetWriter | None = None
        self._header = True

    def write(self, table: pa.Table) -> None:
        if self.fmt == "csv":
            table = _csv_writable(csv_safe(table))
            pacsv.write_csv(table, self._fh, pacsv.WriteOptions(include_header=self._header))
            self._header = False
            return
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._fh, table.schema, compression="zstd")
        self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
                self._parquet = None
        finally:
            self._fh.close()


class _LocalFile(File):
    """The finished output file: a file-system storage moves it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return self.name


# --- prediction logging --------------------------------------------------------------------


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

    @property
    def caller(self) -> str:
        return f"job:{self.job.pk}"


def log_table(target: LogTarget, chunk: LogChunk, now: Any) -> pa.Table:
    """The Prediction rows of a chunk as an Arrow table in LOG_COLUMNS order (JSON columns as text)."""
    n = chunk.inputs.num_rows
    null_floats = pa.nulls(n, pa.float64())
    return pa.table(
        {
            "id": pa.array(uuid7_strings(n), type=pa.string()),
            "project_id": pa.repeat(target.deployment.project_id, n),
            "deployment_id": pa.repeat(target.deployment.pk, n),
            "model_version_id": pa.repeat(target.version.pk, n),
            "source": pa.repeat("batch", n),
            "inputs": json_objects(chunk.inputs),
            "prediction": json_labels(chunk.labels),
            "confidence": pa.array(chunk.conf, type=pa.float64()) if chunk.conf is not None else null_floats,
            "probabilities": json_probabilities(chunk.proba, target.classes)
            if chunk.proba is not None
            else pa.nulls(n, pa.string()),
            "status": pa.repeat("accepted", n),
            "latency_ms": pa.repeat(float(chunk.latency_ms), n),
            "caller": pa.repeat(target.caller, n),
            "actual_source": pa.repeat("", n),
            "created_at": pa.repeat(now.isoformat(), n),
        }
    )


def _copy_chunk(target: LogTarget, chunk: LogChunk) -> None:
    """One chunk of Prediction rows through COPY, in its own transaction (PostgreSQL)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(log_table(target, chunk, timezone.now()), sink, pacsv.WriteOptions(include_header=False))
    payload = sink.getvalue()
    table = Prediction._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(LOG_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(memoryview(payload))


def _bulk_create_chunk(target: LogTarget, chunk: LogChunk) -> None:
    """The embedded SQLite mode: the same rows through the ORM."""
    now = timezone.now()
    rows = log_table(target, chunk, now).to_pylist()
    with transaction.atomic():
        Prediction.objects.bulk_create(
            [
                Prediction(
                    id=r["id"],
                    project_id=r["project_id"],
                    deployment_id=r["deployment_id"],
                    model_version_id=r["model_version_id"],
                    source="batch",
                    inputs=json.loads(r["inputs"]),
                    prediction=json.loads(r["prediction"]),
                    confidence=r["confidence"],
                    probabilities=json.loads(r["probabilities"]) if r["probabilities"] is not None else None,
                    latency_ms=r["latency_ms"],
                    caller=r["caller"],
                    created_at=now,
                )
                for r in rows
            ],
            batch_size=2000,
        )


class Background:
    """Runs `work(item)` for each item put, on `threads` threads fed through a bounded queue.

    `put` blocks while `threads` items are in progress and one more is waiting, so memory stays
    bounded, and re-raises the first failure of a thread; `close` waits for every item and
    re-raises; `abort` drops what is still queued. With one thread, items are handled in order.
    `synchronous=True` runs each item in the caller's thread instead (the embedded SQLite mode).
    """

    _DONE = object()

    def __init__(self, name: str, work: Any, *, threads: int = 1, synchronous: bool = False, on_exit: Any = None):
        self._work = work
        self._on_exit = on_exit
        self._synchronous = synchronous
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: Exception | None = None
        self._aborted = threading.Event()
        self._threads: list[threading.Thread] = []
        if not synchronous:
            for i in range(threads):
                thread = threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    return
                if self._error is None and not self._aborted.is_set():
                    try:
                        self._work(item)
                    except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread by put / close
                        self._error = exc
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: Any) -> None:
        if self._synchronous:
            self._work(item)
            return
        self._raise()
        self._queue.put(item)

    def _stop(self) -> None:
        for _ in self._threads:
            self._queue.put(self._DONE)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def close(self) -> None:
        self._stop()
        self._raise()

    def abort(self) -> None:
        self._aborted.set()
        self._stop()


# --- the log source: what the logging job writes to the Prediction table --------------------------------
#
# Scoring a million rows takes seconds; PostgreSQL takes several times longer to index a million
# JSON rows. The batch job therefore delivers its output at scoring speed and leaves the rows for
# monitoring in per-chunk Arrow files (inputs as received, prediction, confidence, probabilities:
# no JSON built here), which a child job, `deployment.batch_log`, COPYs into the Prediction table
# with its own progress bar. One file per chunk: CSV chunks may type a column differently.

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
                self.keys.append(default_storage.save(name, _LocalFile(fh, name=path)))
        finally:
            with contextlib.suppress(FileNotFoundError):  # moved into the storage
                os.unlink(path)


def prediction_logger(target: LogTarget) -> Background:
    """COPY on PostgreSQL, LOG_CONNECTIONS chunks at once, each thread on its own connection
    (closed when it ends), one transaction per chunk; bulk_create in the job's thread on SQLite."""
    if connection.vendor == "postgresql":
        return Background(
            f"job-{target.job.pk}-log",
            lambda chunk: _copy_chunk(target, chunk),
            threads=LOG_CONNECTIONS,
            on_exit=lambda: connection.close(),  # the thread's own connection
        )
    return Background(f"job-{target.job.pk}-log", lambda chunk: _bulk_create_chunk(target, chunk), synchronous=True)


def _logged_count(deployment: Deployment, job: Job) -> int:
    return Prediction.objects.filter(
        deployment=deployment,
        created_at__gte=job.created_at - timedelta(days=1),
        source="batch",
        caller=f"job:{job.pk}",
    ).count()


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
        ReviewItem.objects.filter(prediction__in=logged).delete()  # batch rows get none; the FK says they could
        sql, params = logged.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE id IN ({sql})", params)
            return cursor.rowcount


# --- reading ----------------------------------------------------------------------------------


def _chunks(job: Job, schema: list[dict[str, Any]]):
    """(Arrow table, pandas frame, fraction done) per chunk of the input."""
    p = job.params
    if p.get("dataset_version_id"):
        from datasets.models import DatasetVersion

        dv = DatasetVersion.objects.get(pk=p["dataset_version_id"])
        key, fmt = dv.storage_key, "parquet"
    else:
        key, fmt = p["input_key"], p["input_format"]
    with default_storage.open(key, "rb") as fh:
        if fmt == "parquet":
            pf = pq.ParquetFile(fh)
            total = max(1, pf.metadata.num_rows)
            done = 0
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
                table = pa.Table.from_batches([batch])
                done += table.num_rows
                yield table, table.to_pandas(), done / total
        else:
            size = max(1, default_storage.size(key))
            text_cols = {
                f["name"]: str
                for f in schema
                if f["type"] in ("categorical", "text") and f.get("dtype") in ("object", "str", "string")
            }
            for frame in pd.read_csv(fh, chunksize=CHUNK_ROWS, dtype=text_cols, low_memory=False):
                yield _arrow(frame), frame, min(0.99, fh.tell() / size)


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A CSV chunk as Arrow; object columns of mixed types (a number among strings) as text."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        mixed = {c: "string" for c in frame.columns if pd.api.types.is_object_dtype(frame[c])}
        return pa.Table.from_pandas(frame.astype(mixed), preserve_index=False)


# --- the job -----------------------------------------------------------------------------------


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
            X, row_errors = serving.validate_frame(
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


class Ahead:
    """Runs a generator on its own thread, up to `depth` items ahead of the loop that consumes it;
    re-raises its failure in the consumer."""

    _END = object()

    def __init__(self, name: str, make: Any, depth: int = 2):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Any) -> None:
        try:
            for item in make():
                if self._stop.is_set():
                    return
                self._queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._queue.put(_Failure(exc))
        finally:
            self._queue.put(self._END)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass


@dataclass
class _Failure:
    exc: BaseException


def _compiled(version: ModelVersion, model: Any, deployment: Deployment) -> fastpath.CompiledModel | None:
    """The compiled scoring path (deployments/fastpath.py), proven on generated rows; each chunk's
    first rows are also scored both ways before the chunk is trusted to it."""
    if not settings.SERVING_COMPILED:
        return None
    validator = serving.compile_validator(
        version.input_schema, unknown_policy=deployment.unknown_category_policy, allow_missing=deployment.allow_missing
    )
    return fastpath.compiled_for(version, model, validator)


@job_handler("deployment.batch")
def batch_predict(job: Job, ctx: JobContext) -> dict:
    p = job.params
    deployment = Deployment.objects.select_related("project").get(pk=p["deployment_id"])
    version = ModelVersion.objects.get(pk=p["model_version_id"])
    schema = version.input_schema
    names = [f["name"] for f in schema]
    log_predictions = p.get("log_predictions", True)
    # A re-delivered job starts over: drop what an earlier attempt logged.
    logged_delete(deployment=deployment, job=job)
    ctx.progress(1, f"Loading model version {version.version}")
    model = model_for(version)
    compiled = _compiled(version, model, deployment)
    classes = [str(c) for c in (version.classes or getattr(model, "classes_", []))]
    with_proba = version.task_type == "classification" and hasattr(model, "predict_proba")
    fmt = p.get("output_format", "csv")
    tmp = tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False)
    tmp.close()
    rows = errors = 0
    source = LogSourceWriter(job, deployment, classes) if log_predictions else None
    logger = Background(f"job-{job.pk}-log-source", source.write) if source is not None else None
    out = OutputWriter(tmp.name, fmt)
    writer = Background(f"job-{job.pk}-write", out.write)  # pyarrow writes while the next chunk is scored
    prepared = Ahead(f"job-{job.pk}-prepare", lambda: _prepared(job, deployment, schema, model, compiled))
    try:
        # The main thread only runs the model (which releases the GIL): reading, validating and
        # preprocessing the next chunk run on the prepare thread, writing on the writer thread.
        with threadpool_limits(settings.BATCH_SCORING_THREADS):
            for chunk in prepared:
                started = time.perf_counter()
                table, ok, row_errors = chunk.table, chunk.ok, chunk.row_errors
                labels = conf = proba = None
                if chunk.features is not None:
                    labels, conf, proba = serving.score_arrays(
                        chunk.scorer, chunk.features, task_type=version.task_type
                    )
                elapsed = (time.perf_counter() - started) * 1000 + chunk.prepare_ms
                writer.put(
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
                if logger is not None and labels is not None:
                    inputs = table.select(names)
                    logger.put(
                        LogChunk(
                            inputs=inputs if ok.all() else inputs.filter(pa.array(ok)),
                            labels=labels,
                            conf=conf,
                            proba=proba,
                            latency_ms=elapsed / max(1, int(ok.sum())),
                        )
                    )
                rows += table.num_rows
                errors += int((~ok).sum())
                ctx.progress(2 + 96 * chunk.fraction, f"{rows:,} rows scored ({errors:,} refused)", log=False)
        writer.close()
        out.close()
        if logger is not None:
            logger.close()  # every chunk's log source stored before the logging job is queued
        name = f"projects/{deployment.project_id}/batch/{job.pk}-{os.urandom(6).hex()}.{fmt}"
        with open(tmp.name, "rb") as fh:
            key = default_storage.save(name, _LocalFile(fh, name=tmp.name))
    finally:
        prepared.close()
        writer.abort()
        if logger is not None:
            logger.abort()
        out.close()
        with contextlib.suppress(FileNotFoundError):  # moved into the storage
            os.unlink(tmp.name)
    result = {"output_key": key, "output_format": fmt, "rows": rows, "errors": errors, "model_version": version.version}
    if source is not None:
        with transaction.atomic():
            log_job = job_enqueue(
                project=deployment.project,
                kind="deployment.batch_log",
                created_by=job.created_by,
                params={"batch_job_id": job.pk, "keys": source.keys, "classes": classes},
                target=deployment,
                parent=job,
                message="Waiting for a worker to log the batch's predictions for monitoring",
            )
        result["logging_job_id"] = log_job.pk
    ctx.progress(100, f"Done: {rows:,} rows, {errors:,} refused" + ("; logging them for monitoring" if source else ""))
    return result


@job_handler("deployment.batch_log")
def batch_log(job: Job, ctx: JobContext) -> dict:
    """COPY a batch's predictions into the Prediction table (source "batch", caller "job:<batch id>")."""
    p = job.params
    batch = Job.objects.get(pk=p["batch_job_id"])
    deployment = Deployment.objects.select_related("project").get(pk=batch.params["deployment_id"])
    version = ModelVersion.objects.get(pk=batch.params["model_version_id"])
    names = [f["name"] for f in version.input_schema]
    classes = p["classes"]
    if not all(default_storage.exists(key) for key in p["keys"]):
        # The files go only once every chunk is committed: an earlier delivery finished the work.
        return {"logged": _logged_count(deployment, batch), "batch_job_id": batch.pk}
    logged_delete(deployment=deployment, job=batch)  # a re-delivered job starts over
    logger = prediction_logger(LogTarget(deployment, version, batch, classes))
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
