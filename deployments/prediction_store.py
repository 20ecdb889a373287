"""The columnar prediction store's Django side: segments in default_storage, their rows in PostgreSQL.

A logged prediction's features and outputs live in exactly one place:
- in a Parquet segment (deployments.ml.columnar) when its Prediction row has `inputs` NULL: the
  drainer (prediction_log) writes the file, then inserts the Prediction rows and the
  PredictionSegment row in ONE transaction. A crash after the write and before the commit leaves
  a file no segment row names: `orphans_sweep` deletes it, and the retried drain writes the rows
  again (their ids were not committed). A retried drain of rows already committed inserts
  nothing (ON CONFLICT DO NOTHING ... RETURNING) and writes no segment;
- in a segment only, for a batch job's predictions (`segment_only_rows`): the batch logging job
  writes one per chunk and commits its row; nothing looks those up by id (the output file has no
  prediction ids), so PostgreSQL holds no row per prediction, and traffic counts add the
  segments' counts (`segment_only_counts`);
- in `Prediction.inputs` otherwise (held for review, the request's own fallback write, the
  embedded SQLite mode, rows logged before the store).
Readers (monitoring windows, retrain, exports) read both sides and never count a row twice.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from deployments.ml import columnar
from deployments.ml.reference import PREDICTION
from deployments.models import Deployment, ModelVersion, Prediction, PredictionSegment

logger = logging.getLogger(__name__)

_TYPES_TTL = 60.0
_types_cache: dict[int, tuple[float, dict[str, str], bool]] = {}


def enabled() -> bool:
    return bool(settings.PREDICTION_STORE_COLUMNAR) and connection.vendor == "postgresql"


def version_types(model_version_id: int) -> tuple[dict[str, str], bool]:
    """The typed columns of a version's segments and whether its prediction is numeric (cached a minute)."""
    hit = _types_cache.get(model_version_id)
    if hit and time.monotonic() - hit[0] < _TYPES_TTL:
        return hit[1], hit[2]
    mv = ModelVersion.objects.only("reference_stats", "input_schema", "task_type").get(pk=model_version_id)
    reference = mv.reference_stats or {}
    types = columnar.feature_types(reference, mv.input_schema or [])
    out = ((reference.get("outputs") or {}).get(PREDICTION) or {}).get("type")
    numeric = out == "numeric" if out else mv.task_type == "regression"
    _types_cache[model_version_id] = (time.monotonic(), types, numeric)
    return types, numeric


def segment_key(project_id: int, deployment_id: int, when: datetime) -> str:
    when = when.astimezone(UTC)
    return (
        f"projects/{project_id}/deployments/{deployment_id}/predictions/"
        f"date={when:%Y-%m-%d}/hour={when:%H}/{uuid.uuid4().hex}.parquet"
    )


def segment_write(
    *, project_id: int, deployment_id: int, table: pa.Table, caller: str = "", segment_only: bool = False
) -> PredictionSegment:
    """Write one segment file and its row. Call inside the transaction that inserts its Prediction
    rows; with `segment_only` (a batch chunk) there are none: the segment is the predictions' record."""
    times = table.column(columnar.CREATED_AT)
    lo, hi = pa.compute.min_max(times).values()
    lo, hi = lo.as_py(), hi.as_py()
    data = columnar.table_bytes(table)
    key = default_storage.save(segment_key(project_id, deployment_id, lo), ContentFile(data))
    return PredictionSegment.objects.create(
        project_id=project_id,
        deployment_id=deployment_id,
        path=key,
        rows=table.num_rows,
        bytes=len(data),
        min_time=lo,
        max_time=hi,
        hour=lo.replace(minute=0, second=0, microsecond=0),
        caller=caller,
        segment_only_rows=table.num_rows if segment_only else 0,
    )


def _segment_only(deployment: Deployment, start: datetime, end: datetime):
    """The window's segments that are their predictions' only record (batch chunks). A chunk's rows
    share one time, so such a segment is wholly in or out of any window."""
    return PredictionSegment.objects.filter(
        deployment=deployment, segment_only_rows__gt=0, min_time__gte=start, max_time__lt=end
    )


def segment_only_counts(deployment: Deployment, start: datetime, end: datetime) -> int:
    """How many of the window's predictions live only in segments (the traffic counts add them)."""
    return int(_segment_only(deployment, start, end).aggregate(n=Sum("segment_only_rows"))["n"] or 0)


def rows_write(rows: Sequence[dict[str, Any]]) -> int:
    """Segments for decoded log rows just inserted (one per deployment and version). In the caller's transaction."""
    groups: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["project_id"], row["deployment_id"], row["model_version_id"]), []).append(row)
    for (project_id, deployment_id, version_id), group in groups.items():
        types, numeric = version_types(version_id)
        segment_write(
            project_id=project_id, deployment_id=deployment_id, table=columnar.rows_table(group, types, numeric)
        )
    return len(groups)


# --- reading -------------------------------------------------------------------------------------


def window_segments(deployment: Deployment | int, start: datetime | None, end: datetime | None) -> list[str]:
    qs = PredictionSegment.objects.filter(deployment=deployment)
    if start is not None:
        qs = qs.filter(max_time__gte=start)
    if end is not None:
        qs = qs.filter(min_time__lt=end)
    return list(qs.order_by("min_time").values_list("path", flat=True))


def segment_only_table(
    deployment: Deployment, start: datetime, end: datetime, columns: Sequence[str], *, model_version_id: int
) -> pa.Table:
    """The window's batch predictions (segment-only rows) of one version, `columns` only."""
    paths = _segment_only(deployment, start, end).values_list("path", flat=True)
    return columnar.read_tables(
        default_storage, list(paths), columns, start=start, end=end, model_version_id=model_version_id
    )


def window_table(
    deployment: Deployment,
    start: datetime,
    end: datetime,
    columns: Sequence[str],
    *,
    model_version_id: int | None = None,
    exclude_sources: Sequence[str] = ("shadow",),
) -> pa.Table:
    """Every segment row of the window (created_at in [start, end)), `columns` only."""
    return columnar.read_tables(
        default_storage,
        window_segments(deployment, start, end),
        columns,
        start=start,
        end=end,
        model_version_id=model_version_id,
        exclude_sources=exclude_sources,
    )


def window_reader(
    deployment: Deployment,
    start: datetime,
    end: datetime,
    *,
    model_version_id: int | None = None,
    exclude_sources: Sequence[str] = ("shadow",),
) -> columnar.WindowReader:
    """The window's segment rows, read column by column (monitoring snapshots)."""
    return columnar.WindowReader(
        default_storage,
        window_segments(deployment, start, end),
        start=start,
        end=end,
        model_version_id=model_version_id,
        exclude_sources=exclude_sources,
    )


def inputs_for(deployment: Deployment | int, rows: Iterable[tuple[Any, datetime]]) -> dict[uuid.UUID, dict[str, Any]]:
    """{prediction id: inputs} for rows whose features are in segments ((id, created_at) pairs)."""
    rows = list(rows)
    if not rows:
        return {}
    times = [t for _, t in rows]
    ids = [uuid.UUID(str(i)).bytes for i, _ in rows]
    table = columnar.read_tables(
        default_storage,
        window_segments(deployment, min(times), max(times) + timedelta(microseconds=1)),
        None,
        ids=ids,
    )
    features = [c for c in table.column_names if c not in columnar.META]
    out: dict[uuid.UUID, dict[str, Any]] = {}
    for rec in table.select([columnar.ID, columnar.EXTRA, *features]).to_pylist():
        values = {name: rec[name] for name in features}
        if rec[columnar.EXTRA]:
            values.update(json.loads(rec[columnar.EXTRA]))
        out[uuid.UUID(bytes=rec[columnar.ID])] = values
    return out


def prediction_inputs(prediction: Prediction) -> dict[str, Any] | None:
    """One prediction's inputs, from PostgreSQL or from its segment."""
    if prediction.inputs is not None:
        return prediction.inputs
    found = inputs_for(prediction.deployment_id, [(prediction.pk, prediction.created_at)])
    return found.get(prediction.pk)


# --- housekeeping ----------------------------------------------------------------------------------


def orphans_sweep(*, older_than: timedelta = timedelta(hours=1), deployment: Deployment | None = None) -> int:
    """Delete segment files no segment row names (a drain that failed after writing its file).
    Only files older than `older_than`: a drain in progress has written but not yet committed."""
    deleted = 0
    deployments = [deployment] if deployment else Deployment.objects.only("pk", "project_id")
    cutoff = timezone.now() - older_than
    for d in deployments:
        root = f"projects/{d.project_id}/deployments/{d.pk}/predictions"
        known = set(PredictionSegment.objects.filter(deployment=d).values_list("path", flat=True))
        for key in _walk(root):
            if key in known:
                continue
            try:
                if default_storage.get_modified_time(key) > cutoff:
                    continue
            except (NotImplementedError, OSError):
                pass
            default_storage.delete(key)
            deleted += 1
    return deleted


def _walk(root: str) -> list[str]:
    try:
        dirs, files = default_storage.listdir(root)
    except (FileNotFoundError, OSError):
        return []
    keys = [f"{root}/{f}" for f in files]
    for d in dirs:
        keys.extend(_walk(f"{root}/{d}"))
    return keys


def retention_days(deployment: Deployment) -> int:
    return int(deployment.prediction_retention_days or settings.PREDICTION_RETENTION_DAYS)


def retention_apply(deployment: Deployment, *, now: datetime | None = None) -> dict[str, int]:
    """Delete the deployment's predictions older than its retention: Prediction rows (with their
    review items), the segments wholly before the cutoff (rows, then files after the commit), and
    rewrite a segment straddling the cutoff without its expired rows. Storage is really freed."""
    from deployments.models import ReviewItem

    cutoff = (now or timezone.now()) - timedelta(days=retention_days(deployment))
    expired = PredictionSegment.objects.filter(deployment=deployment, max_time__lt=cutoff)
    straddling = list(  # never a batch chunk's (one time for all its rows)
        PredictionSegment.objects.filter(deployment=deployment, min_time__lt=cutoff, max_time__gte=cutoff)
    )
    with transaction.atomic():
        old = Prediction.objects.filter(deployment=deployment, created_at__lt=cutoff)
        ReviewItem.objects.filter(prediction__in=old).delete()
        sql, params = old.values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {Prediction._meta.db_table} WHERE id IN ({sql})", params)
            rows_deleted = cursor.rowcount
        paths = list(expired.values_list("path", flat=True))
        freed = sum(expired.values_list("bytes", flat=True))
        rows_deleted += sum(expired.values_list("segment_only_rows", flat=True))
        expired.delete()
        replaced = []
        for seg in straddling:
            table = columnar.read_tables(default_storage, [seg.path], None, start=cutoff)
            paths.append(seg.path)
            freed += seg.bytes
            seg.delete()
            if table.num_rows:
                new = segment_write(project_id=deployment.project_id, deployment_id=deployment.pk, table=table)
                freed -= new.bytes
                replaced.append(new.path)
    for path in paths:  # after the commit: a rolled-back retention deletes no file
        default_storage.delete(path)
    return {"predictions": rows_deleted, "segments": len(paths), "bytes_freed": int(freed)}


def compact(deployment: Deployment, *, before: datetime | None = None, min_segments: int = 2) -> int:
    """Merge each closed hour's small segments into one file (fewer files to open per window).
    The new segment row replaces the old ones in one transaction; old files go after the commit."""
    before = before or (timezone.now() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    hours = (
        PredictionSegment.objects.filter(deployment=deployment, hour__lt=before, segment_only_rows=0)
        .values_list("hour", flat=True)
        .order_by("hour")
        .distinct()
    )
    merged = 0
    for hour in list(hours):
        # A batch chunk's segment is already large and is counted from its row: left as it is.
        segs = list(
            PredictionSegment.objects.filter(deployment=deployment, hour=hour, max_time__lt=before, segment_only_rows=0)
        )
        if len(segs) < min_segments:
            continue
        table = columnar.read_tables(default_storage, [s.path for s in segs], None)
        table = table.sort_by(columnar.CREATED_AT)
        with transaction.atomic():
            ids = [s.pk for s in segs]
            if len(PredictionSegment.objects.select_for_update().filter(pk__in=ids)) != len(ids):
                continue  # another compaction or retention got there first
            PredictionSegment.objects.filter(pk__in=ids).delete()
            new = segment_write(project_id=deployment.project_id, deployment_id=deployment.pk, table=table)
            new.compacted = True
            new.save(update_fields=["compacted"])
        for s in segs:
            default_storage.delete(s.path)
        merged += len(segs)
    return merged


def housekeeping_all() -> dict[str, int]:
    """Retention, compaction and the orphan sweep for every deployment (the hourly beat task).
    A deployment that fails is logged and skipped: the next run tries again."""
    totals = {"predictions": 0, "segments": 0, "bytes_freed": 0, "compacted": 0, "orphans": 0}
    for deployment in Deployment.objects.only("pk", "project_id", "prediction_retention_days"):
        try:
            for k, v in retention_apply(deployment).items():
                totals[k] += v
            totals["compacted"] += compact(deployment)
            totals["orphans"] += orphans_sweep(deployment=deployment)
        except Exception:
            logger.warning("prediction store housekeeping failed for deployment %s", deployment.pk, exc_info=True)
    return totals


def segments_delete(segments) -> int:
    """Delete segment rows now and their files once the caller's transaction commits."""
    paths = list(segments.values_list("path", flat=True))
    segments.delete()
    transaction.on_commit(lambda: [default_storage.delete(p) for p in paths])
    return len(paths)


def storage_bytes(deployment: Deployment) -> dict[str, int]:
    from django.db.models import Count, Sum

    agg = PredictionSegment.objects.filter(deployment=deployment).aggregate(
        segments=Count("id"), rows=Sum("rows"), bytes=Sum("bytes")
    )
    return {k: int(v or 0) for k, v in agg.items()}
