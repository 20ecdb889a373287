"""Batch inference jobs: stream a file or a dataset version through a deployment's model.

Memory stays bounded whatever the input size: Parquet is read one record batch at a time,
CSV with pandas' chunksize; the output (inputs + prediction + confidence + class
probabilities + a per-row error) is appended to a temporary file chunk by chunk, then stored
under a generated key. Predictions are logged for monitoring with PostgreSQL COPY (source
"batch", caller "job:<id>"); a re-delivered job first deletes what an earlier attempt logged.
"""

from __future__ import annotations

import binascii
import io
import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from deployments import serving
from deployments.models import Deployment, ModelVersion, Prediction
from deployments.registry import model_for
from jobs.models import Job
from jobs.runner import JobContext, job_handler

CHUNK_ROWS = 100_000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def _json_labels(labels: np.ndarray) -> pd.Series:
    s = pd.Series(labels)
    uniques = pd.unique(s)
    if len(uniques) <= 1000:
        return s.map({u: json.dumps(serving._label(u)) for u in uniques})
    return s.map(lambda v: json.dumps(serving._label(v)))


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Strings that a spreadsheet would run as formulas get a leading apostrophe."""
    out = frame
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            text = col.astype("string")
            risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).to_numpy(dtype=bool)
            if risky.any():
                if out is frame:
                    out = frame.copy()
                fixed = col.astype(object).copy()
                fixed[risky] = "'" + text[risky].astype(str)
                out[name] = fixed
    return out


def _log_rows(
    *,
    deployment: Deployment,
    version: ModelVersion,
    job: Job,
    inputs: pd.DataFrame,
    labels: np.ndarray,
    conf: np.ndarray | None,
    proba: np.ndarray | None,
    classes: list[str],
    latency_ms: float,
) -> None:
    n = len(inputs)
    if n == 0:
        return
    now = timezone.now()
    inputs_json = inputs.to_json(orient="records", lines=True, date_format="iso").rstrip("\n").split("\n")
    frame = pd.DataFrame(
        {
            "id": uuid7_strings(n),
            "project_id": deployment.project_id,
            "deployment_id": deployment.pk,
            "model_version_id": version.pk,
            "source": "batch",
            "inputs": inputs_json,
            "prediction": _json_labels(labels).to_numpy(),
            "confidence": conf if conf is not None else np.full(n, np.nan),
            "probabilities": _probabilities_json(proba, classes) if proba is not None else None,
            "status": "accepted",
            "latency_ms": latency_ms,
            "caller": f"job:{job.pk}",
            "actual_source": "",
            "created_at": now.isoformat(),
        }
    )
    if connection.vendor == "postgresql":
        buffer = io.StringIO()
        frame.to_csv(buffer, header=False, index=False)
        columns = ", ".join(frame.columns)
        table = Prediction._meta.db_table
        with connection.cursor() as cursor:
            with cursor.copy(
                f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (actual_source))"
            ) as copy:
                copy.write(buffer.getvalue())
    else:  # the embedded SQLite mode
        Prediction.objects.bulk_create(
            [
                Prediction(
                    id=r["id"],
                    project_id=deployment.project_id,
                    deployment_id=deployment.pk,
                    model_version_id=version.pk,
                    source="batch",
                    inputs=json.loads(r["inputs"]),
                    prediction=json.loads(r["prediction"]),
                    confidence=None if pd.isna(r["confidence"]) else float(r["confidence"]),
                    probabilities=json.loads(r["probabilities"]) if isinstance(r["probabilities"], str) else None,
                    latency_ms=latency_ms,
                    caller=f"job:{job.pk}",
                    created_at=now,
                )
                for r in frame.to_dict("records")
            ],
            batch_size=2000,
        )


def _probabilities_json(proba: np.ndarray, classes: list[str]) -> np.ndarray:
    parts: Any = None
    for j, cls in enumerate(classes):
        key = json.dumps(str(cls))
        piece = (("{" if j == 0 else ", ") + key + ": ") + pd.Series(np.round(proba[:, j], 6)).astype(str)
        parts = piece if parts is None else parts + piece
    return (parts + "}").to_numpy()


def _chunks(job: Job, schema: list[dict[str, Any]]):
    """(frame, fraction done) per chunk of the input."""
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
                frame = batch.to_pandas()
                done += len(frame)
                yield frame, done / total
        else:
            size = max(1, default_storage.size(key))
            text_cols = {
                f["name"]: str
                for f in schema
                if f["type"] in ("categorical", "text") and f.get("dtype") in ("object", "str", "string")
            }
            for frame in pd.read_csv(fh, chunksize=CHUNK_ROWS, dtype=text_cols, low_memory=False):
                yield frame, min(0.99, fh.tell() / size)


@job_handler("deployment.batch")
def batch_predict(job: Job, ctx: JobContext) -> dict:
    p = job.params
    deployment = Deployment.objects.select_related("project").get(pk=p["deployment_id"])
    version = ModelVersion.objects.get(pk=p["model_version_id"])
    schema = version.input_schema
    names = [f["name"] for f in schema]
    log_predictions = p.get("log_predictions", True)
    # A re-delivered job starts over: drop what an earlier attempt logged.
    Prediction.objects.filter(deployment=deployment, source="batch", caller=f"job:{job.pk}").delete()
    ctx.progress(1, f"Loading model version {version.version}")
    model = model_for(version)
    classes = [str(c) for c in (version.classes or getattr(model, "classes_", []))]
    fmt = p.get("output_format", "csv")
    tmp = tempfile.NamedTemporaryFile(suffix=f".{fmt}", delete=False)
    tmp.close()
    writer: pq.ParquetWriter | None = None
    rows = errors = 0
    try:
        with open(tmp.name, "w" if fmt == "csv" else "wb", newline="" if fmt == "csv" else None) as out:
            for frame, fraction in _chunks(job, schema):
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
                ok = row_errors == ""
                result = frame.copy() if fmt == "csv" else frame
                result = result.assign(prediction=None, confidence=np.nan)
                if ok.any():
                    Xok = X[ok] if not ok.all() else X
                    labels, conf, proba = serving.score_arrays(model, Xok, task_type=version.task_type)
                    pred_col = np.empty(len(frame), dtype=object)
                    pred_col[ok] = labels
                    result["prediction"] = (
                        pred_col if version.task_type == "classification" else pd.to_numeric(pd.Series(pred_col))
                    )
                    if conf is not None:
                        c = np.full(len(frame), np.nan)
                        c[ok] = conf
                        result["confidence"] = c
                    if proba is not None:
                        for j, cls in enumerate(classes):
                            col = np.full(len(frame), np.nan)
                            col[ok] = proba[:, j]
                            result[f"proba_{cls}"] = col
                    elapsed = (time.perf_counter() - started) * 1000
                    if log_predictions:
                        with transaction.atomic():
                            _log_rows(
                                deployment=deployment,
                                version=version,
                                job=job,
                                inputs=frame.loc[ok, names],
                                labels=labels,
                                conf=conf,
                                proba=proba,
                                classes=classes,
                                latency_ms=elapsed / max(1, int(ok.sum())),
                            )
                result["error"] = row_errors
                if fmt == "csv":
                    _csv_safe(result).to_csv(out, header=rows == 0, index=False)
                else:
                    table = pa.Table.from_pandas(
                        result.astype({"prediction": str}) if version.task_type == "classification" else result,
                        preserve_index=False,
                    )
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema, compression="zstd")
                    writer.write_table(table.cast(writer.schema))
                rows += len(frame)
                errors += int((~ok).sum())
                ctx.progress(2 + 96 * fraction, f"{rows:,} rows scored ({errors:,} refused)", log=False)
            if writer is not None:
                writer.close()
                writer = None
        name = f"projects/{deployment.project_id}/batch/{job.pk}-{os.urandom(6).hex()}.{fmt}"
        with open(tmp.name, "rb") as fh:
            key = default_storage.save(name, File(fh))
    finally:
        if writer is not None:
            writer.close()
        os.unlink(tmp.name)
    ctx.progress(100, f"Done: {rows:,} rows, {errors:,} refused")
    return {"output_key": key, "output_format": fmt, "rows": rows, "errors": errors, "model_version": version.version}
