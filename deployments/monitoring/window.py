"""Reading one window of a deployment's prediction log for a snapshot: counts, latency
percentiles per request and rows per request aggregated by PostgreSQL, and the newest
predictions' features extracted and typed in SQL (no JSON decoding in Python). SQLite (the embedded demo) gets the same answers in Python."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Q

from deployments import prediction_store
from deployments.ml import columnar, drift
from deployments.ml.reference import PREDICTION
from deployments.models import Deployment, Prediction, PredictionStatus
from deployments.serving.selectors import error_counts

# One predict call logs all its rows with the same time, caller, source and latency (the call's
# own): those four group the log back into requests. Two calls of one caller in the same
# microsecond with the same latency to the nanosecond would merge: not a practical concern.
REQUEST_KEY = ("created_at", "caller", "source", "latency_ms")


def _request_stats(deployment: Deployment, start: datetime, end: datetime) -> dict[str, Any]:
    """Latency percentiles per predict request (a 40-row call counts once, not 40 times) and the
    rows per request, in the database on PostgreSQL, in Python elsewhere (SQLite). Batch jobs and
    shadow copies are not requests: a 50,000-row chunk's seconds would swamp the API's figures."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY lat), "
                "avg(n_rows), percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY n_rows), max(n_rows) "
                f"FROM (SELECT max(latency_ms) AS lat, count(*) AS n_rows FROM deployments_prediction "
                "WHERE deployment_id = %s AND created_at >= %s AND created_at < %s "
                "AND source NOT IN ('shadow', 'batch') "
                f"GROUP BY {', '.join(REQUEST_KEY)}) r",
                [deployment.pk, start, end],
            )
            count, lat, mean_rows, rows_pct, max_rows = cur.fetchone()
    else:
        groups = Counter(
            Prediction.objects.filter(deployment=deployment, created_at__gte=start, created_at__lt=end)
            .exclude(source__in=("shadow", "batch"))
            .values_list(*REQUEST_KEY)
        )
        count = len(groups)
        lats = np.array([k[3] for k in groups if k[3] is not None], dtype=float)
        sizes = np.array(list(groups.values()), dtype=float)
        lat = list(np.percentile(lats, [50, 95, 99])) if lats.size else None
        mean_rows = float(sizes.mean()) if sizes.size else None
        rows_pct = list(np.percentile(sizes, [50, 95])) if sizes.size else None
        max_rows = int(sizes.max()) if sizes.size else None
    lat = lat or [None, None, None]
    rows_pct = rows_pct or [None, None]
    return {
        "requests": int(count or 0),
        "latency_ms": dict(zip(("p50", "p95", "p99"), [_f(v) for v in lat], strict=True)),
        "rows_per_request": {
            "mean": _f(mean_rows),
            "p50": _f(rows_pct[0]),
            "p95": _f(rows_pct[1]),
            "max": int(max_rows) if max_rows is not None else None,
        },
    }


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None


SOURCES = ("api", "batch", "shadow", "simulator")


def traffic_compute(deployment: Deployment, start: datetime, end: datetime) -> dict[str, Any]:
    """Counts of the window (one scan on PostgreSQL), then latency per request and rows per request."""
    errors = error_counts(deployment=deployment, start=start, end=end)
    if connection.vendor == "postgresql":
        served = "source <> 'shadow'"
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT count(*) FILTER (WHERE {served}), "
                f"count(*) FILTER (WHERE {served} AND status = 'pending_review'), "
                f"count(*) FILTER (WHERE {served} AND actual IS NOT NULL), "
                + ", ".join("count(*) FILTER (WHERE source = %s)" for _ in SOURCES)
                + ", count(*) "
                "FROM deployments_prediction WHERE deployment_id = %s AND created_at >= %s AND created_at < %s",
                [*SOURCES, deployment.pk, start, end],
            )
            row = cur.fetchone()
        agg = {"predictions": row[0], "pending_review": row[1], "labelled": row[2]}
        by_source = {s: n for s, n in zip(SOURCES, row[3 : 3 + len(SOURCES)], strict=True) if n}
        other = row[3 + len(SOURCES)] - sum(by_source.values())
        if other:
            by_source["other"] = other
        batch_only = prediction_store.segment_only_counts(deployment, start, end)  # no Prediction rows
        if batch_only:
            agg["predictions"] += batch_only
            by_source["batch"] = by_source.get("batch", 0) + batch_only
    else:
        qs = Prediction.objects.filter(deployment=deployment, created_at__gte=start, created_at__lt=end)
        agg = qs.exclude(source="shadow").aggregate(
            predictions=Count("id"),
            pending_review=Count("id", filter=Q(status=PredictionStatus.PENDING_REVIEW)),
            labelled=Count("id", filter=Q(actual__isnull=False)),
        )
        by_source = dict(qs.values_list("source").annotate(n=Count("id")).order_by())
    known = [v for v in errors.values() if v is not None]
    requests_with_errors = agg["predictions"] + sum(known)
    error_rate = (sum(known) / requests_with_errors) if known and requests_with_errors else None
    return {
        **agg,
        "by_source": by_source,
        "errors": errors,
        "error_rate": error_rate,
        **_request_stats(deployment, start, end),
    }


_NUMBER_RE = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


def _sql_numeric(expr: str) -> str:
    """A JSON value as float8 in SQL: numbers, numeric strings; anything else NULL (missing)."""
    return (
        f"CASE jsonb_typeof({expr}) WHEN 'number' THEN ({expr} #>> '{{}}')::float8 "
        f"WHEN 'string' THEN CASE WHEN ({expr} #>> '{{}}') ~ '{_NUMBER_RE}' THEN ({expr} #>> '{{}}')::float8 END END"
    )


def _sql_category(expr: str) -> str:
    """A JSON value as category text in SQL, the same text as `drift._category` in Python."""
    text = f"({expr} #>> '{{}}')"
    return (
        f"CASE jsonb_typeof({expr}) WHEN 'string' THEN {text} WHEN 'boolean' THEN initcap({text}) "
        f"WHEN 'number' THEN CASE WHEN {text}::numeric = trunc({text}::numeric) "
        f"THEN trunc({text}::numeric)::text ELSE {text} END END"
    )


def window_columns(
    deployment: Deployment, start: datetime, end: datetime, limit: int, reference: dict[str, Any]
) -> tuple[int, dict[str, Any], Any, Any]:
    """EVERY prediction of the window, one column per feature (and outputs): the rows of the
    columnar store's segments (read with pyarrow, no sampling) plus the rows whose features are
    still JSON in PostgreSQL (held for review, older rows; at most the newest `limit` of those).

    Numeric columns come back as float arrays; categorical ones as lists or already as counts
    {category: n} (`drift.categorical_counts` takes both)."""
    features = {
        name: ref["type"]
        for name, ref in (reference.get("features") or {}).items()
        if ref.get("type") in ("numeric", "categorical")
    }
    outputs = reference.get("outputs") or {}
    pred_numeric = (outputs.get(PREDICTION) or {}).get("type") == "numeric"
    n_json, data, preds, confs = _json_columns(deployment, start, end, limit, features, pred_numeric)
    if connection.vendor != "postgresql":
        return n_json, data, preds, confs
    reader = prediction_store.window_reader(deployment, start, end, model_version_id=deployment.model_version_id)
    if not reader.num_rows:
        return n_json, data, preds, confs
    if reader.num_rows <= PREFETCH_ROWS:
        reader.prefetch([*features, columnar.PREDICTION, columnar.CONFIDENCE])
    merged = _LazyColumns(reader, features, data)
    pred = _merge(reader.values(columnar.PREDICTION, pred_numeric), preds, pred_numeric)
    conf = _merge(reader.values(columnar.CONFIDENCE, True), confs, True)
    return n_json + reader.num_rows, merged, pred, conf


# Windows up to this many rows are read in one pass (every column at once, about 200 bytes a row
# in memory); larger ones one column at a time, so memory holds one column whatever the window.
PREFETCH_ROWS = 2_000_000


class _LazyColumns(Mapping):
    """The window's feature columns, each read from the segments when the drift loop asks for it
    (and dropped after): memory holds one column at a time, whatever the number of features."""

    def __init__(self, reader: Any, features: dict[str, str], json_data: dict[str, list[Any]]):
        self.reader, self.features, self.json_data = reader, features, json_data

    def __getitem__(self, name: str) -> Any:
        if name not in self.features:
            raise KeyError(name)
        numeric = self.features[name] == "numeric"
        return _merge(self.reader.values(name, numeric), self.json_data.get(name, []), numeric)

    def __iter__(self):
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)


def _merge(segment: Any, json_values: list[Any], numeric: bool) -> Any:
    """A segment column (floats, or counts) and the same column of the JSON rows as one."""
    if numeric:
        return np.concatenate([segment, drift.to_numeric(json_values)]) if json_values else segment
    counts = dict(segment)
    for value, n in Counter(v for v in json_values if v is not None).items():
        key = drift.category_text(value)
        counts[key] = counts.get(key, 0) + n
    return counts


def _json_columns(
    deployment: Deployment,
    start: datetime,
    end: datetime,
    limit: int,
    features: dict[str, str],
    pred_numeric: bool,
) -> tuple[int, dict[str, list[Any]], list[Any], list[Any]]:
    """The newest `limit` predictions of the window whose features are JSON in PostgreSQL.

    On PostgreSQL each feature is extracted and typed in SQL (`inputs->'x'` cast to float8 or
    category text), so Python never decodes the JSON documents. Elsewhere (SQLite, the embedded
    demo) the rows are decoded in Python.
    """
    if connection.vendor == "postgresql":
        names = list(features)
        # The inner query picks the rows and looks each feature up once (a subquery with LIMIT
        # is not flattened, so the outer CASE expressions reuse f0, f1, ... instead of
        # re-reading the document for every reference).
        inner = ", ".join(f"inputs -> %s AS f{i}" for i in range(len(names)))
        outer = [
            _sql_numeric(f"t.f{i}") if features[name] == "numeric" else _sql_category(f"t.f{i}")
            for i, name in enumerate(names)
        ]
        outer.append(_sql_numeric("t.p") if pred_numeric else _sql_category("t.p"))
        outer.append("t.confidence")
        query = (
            f"SELECT {', '.join(outer)} FROM (SELECT {inner}{', ' if names else ''}prediction AS p, confidence "
            "FROM deployments_prediction WHERE deployment_id = %s AND model_version_id = %s "
            "AND created_at >= %s AND created_at < %s AND source <> 'shadow' AND inputs IS NOT NULL "
            "ORDER BY created_at DESC LIMIT %s) t"
        )
        params = [*names, deployment.pk, deployment.model_version_id, start, end, limit]
        connection.ensure_connection()
        # A binary-result cursor: float8 columns arrive as 8 bytes each instead of text to parse.
        import psycopg

        with psycopg.Cursor(connection.connection) as cur:
            cur.execute(query, params, binary=True)
            rows = cur.fetchall()
        if not rows:
            return 0, {n: [] for n in names}, [], []
        columns = list(zip(*rows, strict=True))
        data = {name: list(columns[i]) for i, name in enumerate(names)}
        return len(rows), data, list(columns[-2]), list(columns[-1])
    rows = list(
        Prediction.objects.filter(
            deployment=deployment,
            model_version_id=deployment.model_version_id,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(source="shadow")
        .order_by("-created_at")
        .values_list("inputs", "prediction", "confidence")[:limit]
    )
    data = {name: [r[0].get(name) if isinstance(r[0], dict) else None for r in rows] for name in features}
    return len(rows), data, [r[1] for r in rows], [r[2] for r in rows]
