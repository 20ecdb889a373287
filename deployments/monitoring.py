"""Monitoring services: snapshots, alerts, ground-truth feedback, retraining.

Dashboards and the monitoring API read only stored `MonitoringSnapshot` rows (precomputed by
the `monitoring.snapshot` job, from beat or on demand), so they stay fast however many
predictions are logged. A snapshot aggregates in the database what it can (counts, latency
percentiles) and reads a bounded sample of the window's predictions for the drift statistics.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings as dj_settings
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from deployments import drift, prediction_log
from deployments.models import (
    Alert,
    AlertState,
    Deployment,
    ModelVersion,
    MonitoringSnapshot,
    Prediction,
    PredictionStatus,
    ReviewItem,
    ReviewStatus,
)
from deployments.monitoring_reference import CONFIDENCE, PREDICTION, reference_arrays
from mlplatform.errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "psi_warn": 0.1,  # industry convention: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant
    "psi_alert": 0.2,
    "interval_minutes": 60,
    # Drift reads at most this many of the window's newest predictions: the KS test's power at
    # 100k rows is far beyond what a PSI threshold needs, and the read is the snapshot's main cost.
    "sample_size": 100_000,
    "min_samples": 30,  # fewer rows than this: "insufficient", no drift verdict
    "min_labels": 30,  # fewer labels than this: no performance verdict
    "performance_window": 500,  # the live metric is over the newest N labelled predictions
    "missing_alert": 0.1,  # missing rate above the training one by this much
    "unseen_alert": 0.05,  # share of categories never seen in training
    "error_rate_alert": 0.05,
    "latency_p95_alert_ms": None,
    "alert_email": [],
    "alert_webhook_url": "",
}
LOWER_IS_BETTER = {"rmse", "mae", "mse", "log_loss", "mape", "brier"}
FEEDBACK_MAX_ITEMS = 10_000


def monitoring_settings(deployment: Deployment) -> dict[str, Any]:
    return DEFAULTS | {k: v for k, v in (deployment.monitoring or {}).items() if v is not None or k in DEFAULTS}


def monitoring_settings_validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check a settings patch; raises InvalidInput naming the field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in DEFAULTS:
            raise InvalidInput(f"Unknown monitoring setting {key!r}.", field=key)
        if key in ("alert_email",):
            if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
                raise InvalidInput("A list of e-mail addresses.", field=key)
        elif key == "alert_webhook_url":
            if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
                raise InvalidInput("An http(s) URL.", field=key)
        elif key == "latency_p95_alert_ms" and value is None:
            pass
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInput("A non-negative number.", field=key)
            if key in ("interval_minutes",) and value < 1:
                raise InvalidInput("At least 1 minute.", field=key)
            if key == "sample_size" and not 1_000 <= value <= 1_000_000:
                raise InvalidInput("Between 1000 and 1000000 predictions.", field=key)
        out[key] = value
    merged = DEFAULTS | out
    if merged["psi_warn"] > merged["psi_alert"]:
        raise InvalidInput("psi_warn must not exceed psi_alert.", field="psi_warn")
    return out


def monitoring_settings_update(
    *, deployment: Deployment, actor: Any, values: dict[str, Any], auto_retrain: bool | None = None
) -> Deployment:
    from projects.services import audit_record

    if auto_retrain is not None and not isinstance(auto_retrain, bool):
        raise InvalidInput("true or false.", field="auto_retrain")
    clean = monitoring_settings_validate(values)
    auto = auto_retrain
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        deployment.monitoring = (deployment.monitoring or {}) | clean
        fields = ["monitoring", "updated_at"]
        if isinstance(auto, bool):
            deployment.auto_retrain = auto
            fields.append("auto_retrain")
        deployment.save(update_fields=fields)
        audit_record(
            actor=actor,
            action="deployment.monitoring_update",
            project=deployment.project,
            obj=deployment,
            data=clean | ({"auto_retrain": auto} if isinstance(auto, bool) else {}),
        )
    return deployment


# ------------------------------------------------------------------------------------ traffic


def _percentiles(deployment: Deployment, start: datetime, end: datetime) -> dict[str, float | None]:
    """Latency percentiles in the database (PostgreSQL `percentile_cont`), else in Python (SQLite)."""
    keys = ("p50", "p95", "p99")
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) "
                "FROM deployments_prediction WHERE deployment_id = %s AND created_at >= %s AND created_at < %s "
                "AND latency_ms IS NOT NULL AND source <> 'shadow'",
                [deployment.pk, start, end],
            )
            row = cur.fetchone()
        values = row[0] if row and row[0] else [None, None, None]
        return dict(zip(keys, [float(v) if v is not None else None for v in values], strict=True))
    lat = np.array(
        list(
            Prediction.objects.filter(
                deployment=deployment, created_at__gte=start, created_at__lt=end, latency_ms__isnull=False
            )
            .exclude(source="shadow")
            .values_list("latency_ms", flat=True)
        ),
        dtype=float,
    )
    if not lat.size:
        return dict.fromkeys(keys)
    return dict(zip(keys, [float(x) for x in np.percentile(lat, [50, 95, 99])], strict=True))


def _error_counts(deployment: Deployment, start: datetime, end: datetime) -> dict[str, int]:
    """Rejected requests by kind, counted by the serving code (failed predictions are not logged)."""
    from deployments import serving_errors

    return serving_errors.error_counts(deployment=deployment, start=start, end=end)


SOURCES = ("api", "batch", "shadow", "simulator")


def traffic_compute(deployment: Deployment, start: datetime, end: datetime) -> dict[str, Any]:
    """Counts and latency percentiles of the window, in one scan on PostgreSQL."""
    errors = _error_counts(deployment, start, end)
    if connection.vendor == "postgresql":
        served = "source <> 'shadow'"
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT count(*) FILTER (WHERE {served}), "
                f"count(*) FILTER (WHERE {served} AND status = 'pending_review'), "
                f"count(*) FILTER (WHERE {served} AND actual IS NOT NULL), "
                + ", ".join("count(*) FILTER (WHERE source = %s)" for _ in SOURCES)
                + ", count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) "
                f"FILTER (WHERE {served}) "
                "FROM deployments_prediction WHERE deployment_id = %s AND created_at >= %s AND created_at < %s",
                [*SOURCES, deployment.pk, start, end],
            )
            row = cur.fetchone()
        agg = {"predictions": row[0], "pending_review": row[1], "labelled": row[2]}
        by_source = {s: n for s, n in zip(SOURCES, row[3 : 3 + len(SOURCES)], strict=True) if n}
        other = row[3 + len(SOURCES)] - sum(by_source.values())
        if other:
            by_source["other"] = other
        pct = row[-1] or [None, None, None]
        latency = dict(zip(("p50", "p95", "p99"), [float(v) if v is not None else None for v in pct], strict=True))
    else:
        qs = Prediction.objects.filter(deployment=deployment, created_at__gte=start, created_at__lt=end)
        agg = qs.exclude(source="shadow").aggregate(
            predictions=Count("id"),
            pending_review=Count("id", filter=Q(status=PredictionStatus.PENDING_REVIEW)),
            labelled=Count("id", filter=Q(actual__isnull=False)),
        )
        by_source = dict(qs.values_list("source").annotate(n=Count("id")).order_by())
        latency = _percentiles(deployment, start, end)
    known = [v for v in errors.values() if v is not None]
    requests_with_errors = agg["predictions"] + sum(known)
    error_rate = (sum(known) / requests_with_errors) if known and requests_with_errors else None
    return {**agg, "by_source": by_source, "errors": errors, "error_rate": error_rate, "latency_ms": latency}


# ------------------------------------------------------------------------------------ drift


def reference_for(model_version: ModelVersion) -> dict[str, Any]:
    """The model's drift reference; built late (and stored) if registration did not build it."""
    ref = model_version.reference_stats or {}
    if ref.get("features") or not model_version.reference_key:
        return ref
    from datasets.storage import frame_load
    from deployments.monitoring_reference import reference_stats_build

    frame = frame_load(model_version.reference_key)
    ref = reference_stats_build(frame=frame, input_schema=model_version.input_schema)
    ModelVersion.objects.filter(pk=model_version.pk).update(reference_stats=ref)
    model_version.reference_stats = ref
    return ref


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


def _window_columns(
    deployment: Deployment, start: datetime, end: datetime, limit: int, reference: dict[str, Any]
) -> tuple[int, dict[str, list[Any]], list[Any], list[Any]]:
    """The newest `limit` predictions of the window, one list per feature (and outputs).

    On PostgreSQL each feature is extracted and typed in SQL (`inputs->'x'` cast to float8 or
    category text), so Python never decodes the JSON documents: that decode was most of a
    snapshot's time. Elsewhere (SQLite, the embedded demo) the rows are decoded in Python.
    """
    features = {
        name: ref["type"]
        for name, ref in (reference.get("features") or {}).items()
        if ref.get("type") in ("numeric", "categorical")
    }
    outputs = reference.get("outputs") or {}
    pred_numeric = (outputs.get(PREDICTION) or {}).get("type") == "numeric"
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
            "AND created_at >= %s AND created_at < %s AND source <> 'shadow' ORDER BY created_at DESC LIMIT %s) t"
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


def drift_compute(
    reference: dict[str, Any],
    n: int,
    columns: dict[str, list[Any]],
    predictions: list[Any],
    confidences: list[Any],
    *,
    conf: dict[str, Any],
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Per-feature drift and data quality, and the drift of predictions and confidences."""
    arrays = reference_arrays(reference)
    opts = {"psi_warn": conf["psi_warn"], "psi_alert": conf["psi_alert"], "min_samples": conf["min_samples"]}
    features: list[dict] = []
    quality: list[dict] = []
    for name, ref in (reference.get("features") or {}).items():
        if ref.get("type") not in ("numeric", "categorical"):
            continue
        values = columns.get(name, [None] * n)
        if ref["type"] == "numeric":
            arr = drift.to_numeric(values)
            result = drift.numeric_drift(name, ref, arrays.get(ref.get("array", "")), arr, **opts)
            q = drift.numeric_quality(ref, arr) if n else None
        else:
            counts = drift.categorical_counts(values, set(ref["shares"]))
            result = drift.categorical_drift(name, ref, None, counts=counts, **opts)
            q = drift.categorical_quality(ref, n, counts) if n else None
        features.append(result.as_dict())
        if q is not None:
            quality.append({"feature": name, "type": ref["type"], **drift._json_safe(q)})
    outputs: dict[str, Any] = {}
    outs = reference.get("outputs") or {}
    if PREDICTION in outs:
        ref = outs[PREDICTION]
        if ref["type"] == "numeric":
            outputs["prediction"] = drift.numeric_drift(
                "prediction", ref, arrays.get("prediction"), drift.to_numeric(predictions), **opts
            ).as_dict()
        else:
            outputs["prediction"] = drift.categorical_drift("prediction", ref, predictions, **opts).as_dict()
    if CONFIDENCE in outs:
        ref = outs[CONFIDENCE]
        outputs["confidence"] = drift.numeric_drift(
            "confidence", ref, arrays.get("confidence"), drift.to_numeric(confidences), **opts
        ).as_dict()
    return features, quality, outputs


# ------------------------------------------------------------------------------------ performance


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b)


def _classification_metrics(y_true: list[Any], y_pred: list[Any], classes: list[Any]) -> dict[str, float]:
    from sklearn import metrics as m

    t = np.array([str(x) for x in y_true])
    p = np.array([str(x) for x in y_pred])
    labels = [str(c) for c in classes] or sorted(set(t) | set(p))
    out = {
        "accuracy": float(m.accuracy_score(t, p)),
        "balanced_accuracy": float(m.balanced_accuracy_score(t, p)),
        "f1_macro": float(m.f1_score(t, p, labels=labels, average="macro", zero_division=0)),
    }
    if len(labels) == 2:
        pos = labels[1]
        out["f1"] = float(m.f1_score(t, p, pos_label=pos, zero_division=0))
        out["precision"] = float(m.precision_score(t, p, pos_label=pos, zero_division=0))
        out["recall"] = float(m.recall_score(t, p, pos_label=pos, zero_division=0))
    else:
        out["f1"] = out["f1_macro"]
        out["f1_weighted"] = float(m.f1_score(t, p, labels=labels, average="weighted", zero_division=0))
    return out


def _regression_metrics(y_true: list[Any], y_pred: list[Any]) -> dict[str, float]:
    t = drift.to_numeric(y_true)
    p = drift.to_numeric(y_pred)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if not t.size:
        return {}
    err = p - t
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
    }


def metrics_for(task_type: str, y_true: list[Any], y_pred: list[Any], classes: list[Any]) -> dict[str, float]:
    if not y_true:
        return {}
    if task_type == "classification":
        return _classification_metrics(y_true, y_pred, classes)
    return _regression_metrics(y_true, y_pred)


def performance_compute(deployment: Deployment, end: datetime, conf: dict[str, Any]) -> dict[str, Any]:
    """Live metrics over the newest labelled predictions of the deployed model, vs its test CI."""
    mv = deployment.model_version
    rows = list(
        # Newest labels first, through the (deployment, actual_at) index: ordering by the
        # prediction time would walk every unlabelled prediction of a busy deployment.
        Prediction.objects.filter(deployment=deployment, model_version=mv, actual_at__lt=end, actual__isnull=False)
        .exclude(source="shadow")
        .order_by("-actual_at", "-created_at")
        .values_list("prediction", "actual", "created_at")[: int(conf["performance_window"])]
    )
    test = (mv.metrics or {}).get("test") or {}
    result: dict[str, Any] = {"n_labels": len(rows), "metrics": {}, "status": "insufficient"}
    if not rows:
        return result
    preds = [r[0] for r in rows]
    actual = [r[1] for r in rows]
    result["labels_from"] = min(r[2] for r in rows).isoformat()
    values = metrics_for(mv.task_type, actual, preds, mv.classes or [])
    worst = "ok"
    for name, value in values.items():
        entry: dict[str, Any] = {"value": drift._json_safe(value)}
        ref = test.get(name)
        if isinstance(ref, dict):
            lower = name in LOWER_IS_BETTER
            entry |= {"test": ref.get("value"), "ci_low": ref.get("ci_low"), "ci_high": ref.get("ci_high")}
            bound = ref.get("ci_high") if lower else ref.get("ci_low")
            below = bound is not None and math.isfinite(value) and (value > bound if lower else value < bound)
            entry["status"] = "insufficient" if len(rows) < conf["min_labels"] else ("alert" if below else "ok")
            if entry["status"] == "alert":
                worst = "alert"
        result["metrics"][name] = entry
    result["status"] = "insufficient" if len(rows) < conf["min_labels"] else worst
    return result


# ------------------------------------------------------------------------------------ review


def review_compute(deployment: Deployment, start: datetime, end: datetime) -> dict[str, Any]:
    try:
        from deployments import reviews  # type: ignore[attr-defined]
    except ImportError:
        reviews = None
    if reviews is not None and hasattr(reviews, "review_health"):
        if hasattr(reviews, "review_sla_check"):
            reviews.review_sla_check(deployment=deployment)  # escalates overdue items first
        return dict(reviews.review_health(deployment=deployment))
    now = timezone.now()
    pending = ReviewItem.objects.filter(
        deployment=deployment, status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    )
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    decided = ReviewItem.objects.filter(deployment=deployment, decided_at__gte=start, decided_at__lt=end)
    n_decided = decided.count()
    overridden = decided.filter(status=ReviewStatus.OVERRIDDEN).count()
    sla = timedelta(minutes=deployment.review_sla_minutes)
    return {
        "pending": pending.count(),
        "overdue": pending.filter(created_at__lt=now - sla).count(),
        "oldest_pending_minutes": round((now - oldest).total_seconds() / 60, 1) if oldest else None,
        "decided": n_decided,
        "override_rate": overridden / n_decided if n_decided else None,
        "sla_minutes": deployment.review_sla_minutes,
    }


# ------------------------------------------------------------------------------------ snapshot


def snapshot_compute(
    *,
    deployment: Deployment,
    window_end: datetime | None = None,
    window_minutes: int | None = None,
    job_id: int | None = None,
) -> MonitoringSnapshot:
    """Compute and store one snapshot of `deployment`, then evaluate the alert rules on it."""
    prediction_log.flush()  # the window's last predictions may still be on their way to the log
    deployment = Deployment.objects.select_related("model_version", "project").get(pk=deployment.pk)
    conf = monitoring_settings(deployment)
    end = window_end or timezone.now()
    start = end - timedelta(minutes=int(window_minutes or conf["interval_minutes"]))
    mv = deployment.model_version
    reference = reference_for(mv)
    n, columns, preds, confs = _window_columns(deployment, start, end, int(conf["sample_size"]), reference)
    features, quality, outputs = drift_compute(reference, n, columns, preds, confs, conf=conf)
    scored = [f for f in features if f["psi"] is not None]
    data = {
        "model_version": {"id": mv.pk, "version": mv.version},
        "settings": {k: conf[k] for k in ("psi_warn", "psi_alert", "interval_minutes", "sample_size")},
        "traffic": traffic_compute(deployment, start, end),
        "drift": {
            "sample_size": n,
            "reference_available": bool(reference.get("features")),
            "features": sorted(features, key=lambda f: -(f["psi"] if f["psi"] is not None else -1)),
            "n_drifted": sum(1 for f in features if f["status"] == "alert"),
            "n_warn": sum(1 for f in features if f["status"] == "warn"),
            "max_psi": max((f["psi"] for f in scored), default=None),
            "share_drifted": (sum(1 for f in scored if f["status"] == "alert") / len(scored)) if scored else None,
        },
        "outputs": outputs,
        "quality": quality,
        "performance": performance_compute(deployment, end, conf),
        "review": review_compute(deployment, start, end),
        "job_id": job_id,
    }
    data = drift._json_safe(data)
    with transaction.atomic():
        snapshot = MonitoringSnapshot.objects.create(
            project=deployment.project, deployment=deployment, window_start=start, window_end=end, data=data
        )
        Deployment.objects.filter(pk=deployment.pk).update(last_snapshot_at=end)
        alerts_evaluate(deployment=deployment, snapshot=snapshot, conf=conf)
    return snapshot


def snapshot_request(*, deployment: Deployment, actor: Any, window_minutes: int | None = None):
    """Queue an on-demand snapshot job (returns the job)."""
    from jobs.runner import job_enqueue

    if window_minutes is not None and (
        isinstance(window_minutes, bool) or not isinstance(window_minutes, int) or not 1 <= window_minutes <= 525_600
    ):
        raise InvalidInput("A whole number of minutes between 1 and 525600.", field="window_minutes")
    with transaction.atomic():
        return job_enqueue(
            project=deployment.project,
            kind="monitoring.snapshot",
            created_by=actor,
            params={"deployment_id": deployment.pk, "window_minutes": window_minutes, "on_demand": True},
            target=deployment,
            message="Snapshot waiting for a worker",
        )


# ------------------------------------------------------------------------------------ alerts


def _rules(deployment: Deployment, data: dict[str, Any], conf: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rule evaluated on this snapshot: (key, firing or not). Unevaluated keys are left alone."""
    rules: list[dict[str, Any]] = []
    for f in data["drift"]["features"]:
        if f["status"] == "insufficient":
            continue
        rules.append(
            {
                "key": f"drift:{f['feature']}",
                "kind": "drift",
                "severity": "critical",
                "firing": f["status"] == "alert",
                "value": f["psi"],
                "threshold": conf["psi_alert"],
                "message": f"Data drift on {f['feature']}: PSI {f['psi']:.3f} > {conf['psi_alert']}",
            }
        )
    for name, out in data["outputs"].items():
        if out["status"] == "insufficient":
            continue
        rules.append(
            {
                "key": f"drift:{name}",
                "kind": "prediction_drift",
                "severity": "warning",
                "firing": out["status"] == "alert",
                "value": out["psi"],
                "threshold": conf["psi_alert"],
                "message": f"The {name} distribution drifted: PSI {out['psi']:.3f} > {conf['psi_alert']}",
            }
        )
    perf = data["performance"]
    if perf["status"] != "insufficient":
        for name, m in perf["metrics"].items():
            if "status" not in m or m["status"] == "insufficient":
                continue
            lower = name in LOWER_IS_BETTER
            bound = m.get("ci_high") if lower else m.get("ci_low")
            rules.append(
                {
                    "key": f"performance:{name}",
                    "kind": "performance",
                    "severity": "critical",
                    "firing": m["status"] == "alert",
                    "value": m["value"],
                    "threshold": bound,
                    "message": f"Live {name} {m['value']:.3f} is {'above' if lower else 'below'} the test "
                    f"interval ({m.get('ci_low')} to {m.get('ci_high')}) over {perf['n_labels']} labels",
                }
            )
    for q in data["quality"]:
        delta = (q["missing_rate"] or 0) - (q["reference_missing_rate"] or 0)
        rules.append(
            {
                "key": f"missing:{q['feature']}",
                "kind": "data_quality",
                "severity": "warning",
                "firing": data["drift"]["sample_size"] >= conf["min_samples"] and delta > conf["missing_alert"],
                "value": q["missing_rate"],
                "threshold": (q["reference_missing_rate"] or 0) + conf["missing_alert"],
                "message": f"{q['feature']} is missing in {q['missing_rate']:.1%} of requests "
                f"(training: {q['reference_missing_rate'] or 0:.1%})",
            }
        )
        if q["unseen_rate"] is not None:
            rules.append(
                {
                    "key": f"unseen:{q['feature']}",
                    "kind": "data_quality",
                    "severity": "warning",
                    "firing": data["drift"]["sample_size"] >= conf["min_samples"]
                    and q["unseen_rate"] > conf["unseen_alert"],
                    "value": q["unseen_rate"],
                    "threshold": conf["unseen_alert"],
                    "message": f"{q['feature']}: {q['unseen_rate']:.1%} of values are categories unseen in training",
                }
            )
    traffic = data["traffic"]
    if traffic["error_rate"] is not None:
        rules.append(
            {
                "key": "error_rate",
                "kind": "errors",
                "severity": "critical",
                "firing": traffic["error_rate"] > conf["error_rate_alert"],
                "value": traffic["error_rate"],
                "threshold": conf["error_rate_alert"],
                "message": f"Error rate {traffic['error_rate']:.1%} > {conf['error_rate_alert']:.1%}",
            }
        )
    p95 = traffic["latency_ms"].get("p95")
    if conf["latency_p95_alert_ms"] and p95 is not None:
        rules.append(
            {
                "key": "latency_p95",
                "kind": "latency",
                "severity": "warning",
                "firing": p95 > conf["latency_p95_alert_ms"],
                "value": p95,
                "threshold": conf["latency_p95_alert_ms"],
                "message": f"Latency p95 {p95:.1f} ms > {conf['latency_p95_alert_ms']} ms",
            }
        )
    review = data["review"]
    if review.get("overdue") is not None:
        rules.append(
            {
                "key": "review_sla",
                "kind": "review",
                "severity": "warning",
                "firing": review["overdue"] > 0,
                "value": review["overdue"],
                "threshold": 0,
                "message": f"{review['overdue']} review item(s) waited longer than the SLA "
                f"({review.get('sla_minutes')} min)",
            }
        )
    return rules


def alerts_evaluate(*, deployment: Deployment, snapshot: MonitoringSnapshot, conf: dict[str, Any]) -> list[Alert]:
    """Fire, refresh and resolve alerts from one snapshot. Call inside its transaction.

    Deduplication is the database's unique constraint "one firing alert per key": a second
    worker evaluating the same rule at the same moment gets an IntegrityError and updates the
    existing row instead.
    """
    now = timezone.now()
    fired: list[Alert] = []
    resolved: list[Alert] = []
    for rule in _rules(deployment, snapshot.data, conf):
        current = Alert.objects.filter(deployment=deployment, key=rule["key"], state=AlertState.FIRING).first()
        if rule["firing"]:
            if current is not None:
                Alert.objects.filter(pk=current.pk).update(
                    value=rule["value"], message=rule["message"], last_seen_at=now
                )
                continue
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        project=deployment.project,
                        deployment=deployment,
                        key=rule["key"][:120],
                        kind=rule["kind"],
                        severity=rule["severity"],
                        message=rule["message"],
                        value=rule["value"],
                        threshold=rule["threshold"],
                    )
            except IntegrityError:
                continue
            fired.append(alert)
        elif current is not None:
            Alert.objects.filter(pk=current.pk).update(state=AlertState.RESOLVED, resolved_at=now)
            current.state, current.resolved_at = AlertState.RESOLVED, now
            resolved.append(current)
    for alert in fired:
        _notify(deployment, alert, conf, "alert.firing")
    for alert in resolved:
        _notify(deployment, alert, conf, "alert.resolved")
    if fired and deployment.auto_retrain and any(a.kind in ("drift", "performance") for a in fired):
        if not _retrain_active(deployment):
            retrain_start(deployment=deployment, actor=None, reason=f"auto: {fired[0].key}")
    return fired


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.pk,
        "deployment": alert.deployment_id,
        "key": alert.key,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "first_fired_at": alert.first_fired_at,
        "resolved_at": alert.resolved_at,
    }


def _notify(deployment: Deployment, alert: Alert, conf: dict[str, Any], event: str) -> None:
    from projects.webhooks import webhook_enqueue

    payload = {"event": event, "project": deployment.project_id, "alert": alert_payload(alert)}
    url = conf.get("alert_webhook_url") or ""
    if url:
        webhook_enqueue(
            project=deployment.project, url=url, secret=deployment.webhook_secret, event=event, payload=payload
        )
    recipients = [r for r in conf.get("alert_email") or [] if isinstance(r, str)]
    if recipients and event == "alert.firing":
        subject = f"[mlplatform] {alert.severity.upper()}: {deployment.name}: {alert.message}"[:200]
        body = (
            f"Project: {deployment.project.name}\nDeployment: {deployment.name}\nAlert: {alert.key}\n"
            f"{alert.message}\nValue: {alert.value}  Threshold: {alert.threshold}\n"
        )

        def send() -> None:
            try:
                send_mail(subject, body, dj_settings.DEFAULT_FROM_EMAIL, recipients)
            except Exception:  # mail is best effort: the alert is in the app and the webhook either way
                logger.exception("alert e-mail failed for deployment %s", deployment.pk)

        transaction.on_commit(send)


def alert_acknowledge(*, alert: Alert, actor: Any) -> Alert:
    from projects.services import audit_record

    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is None:
            alert.acknowledged_by = actor
            alert.acknowledged_at = timezone.now()
            alert.save(update_fields=["acknowledged_by", "acknowledged_at", "last_seen_at"])
            audit_record(
                actor=actor, action="alert.acknowledge", project=alert.project, obj=alert, data={"key": alert.key}
            )
    return alert


# ------------------------------------------------------------------------------------ feedback


def _coerce_actual(value: Any, mv: ModelVersion, field: str) -> Any:
    if value is None or isinstance(value, (dict, list)):
        raise InvalidInput("A single label or number is required.", field=field)
    if mv.task_type == "classification":
        classes = mv.classes or []
        for c in classes:
            # JSON clients may send 1 or "1" for the class 1: compare as text, store the class itself.
            if _same(c, value):
                return c
        raise InvalidInput(f"Not one of the model's classes {classes!r}.", field=field)
    if isinstance(value, bool):
        raise InvalidInput("A number is required.", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("A number is required.", field=field) from None
    if not math.isfinite(number):
        raise InvalidInput("A finite number is required.", field=field)
    return number


def feedback_record(
    *, deployment: Deployment, items: list[dict[str, Any]], actor: Any, caller: str = ""
) -> dict[str, Any]:
    """Record ground truth for predictions of `deployment`. All or nothing.

    Each item is {"prediction_id", "actual"}; the prediction must belong to this deployment
    (another deployment's or project's id is refused, naming the item). The label is checked
    against the model that made the prediction (its classes, or a finite number).
    """
    import uuid

    from projects.services import audit_record

    if not isinstance(items, list) or not items:
        raise InvalidInput("At least one item is required.", field="items")
    if len(items) > FEEDBACK_MAX_ITEMS:
        raise InvalidInput(f"At most {FEEDBACK_MAX_ITEMS} items per request.", field="items")
    prefix = "items" if len(items) > 1 else ""
    parsed: dict[uuid.UUID, Any] = {}
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]." if prefix else ""
        if not isinstance(item, dict):
            raise InvalidInput("Each item is an object {prediction_id, actual}.", field=f"items[{i}]")
        if "actual" not in item:
            raise InvalidInput("This field is required.", field=f"{where}actual")
        try:
            pid = uuid.UUID(str(item.get("prediction_id")))
        except ValueError:
            raise InvalidInput("Not a prediction id.", field=f"{where}prediction_id") from None
        if pid in parsed:
            raise InvalidInput("Duplicate prediction id in this request.", field=f"{where}prediction_id")
        parsed[pid] = (i, item["actual"])

    def lookup() -> dict[uuid.UUID, Prediction]:
        qs = Prediction.objects.filter(deployment=deployment, pk__in=list(parsed)).select_related("model_version")
        return {p.pk: p for p in qs}

    found = lookup()
    if len(found) < len(parsed) and prediction_log.enabled():
        prediction_log.flush()  # predictions answered a moment ago may still be on their way to the log
        found = lookup()
    updates: list[Prediction] = []
    now = timezone.now()
    for pid, (i, actual) in parsed.items():
        where = f"{prefix}[{i}]." if prefix else ""
        pred = found.get(pid)
        if pred is None:
            raise NotFound(
                f"Prediction {pid} is not a prediction of this deployment.",
                field=f"{where}prediction_id",
            )
        pred.actual = _coerce_actual(actual, pred.model_version, f"{where}actual")
        pred.actual_source = "feedback"
        pred.actual_at = now
        updates.append(pred)
    with transaction.atomic():
        Prediction.objects.bulk_update(updates, ["actual", "actual_source", "actual_at"], batch_size=1000)
        audit_record(
            actor=actor,
            action="deployment.feedback",
            project=deployment.project,
            obj=deployment,
            data={"count": len(updates)},
            actor_label=caller or None,
        )
    return {"recorded": len(updates)}


# ------------------------------------------------------------------------------------ reads


def snapshot_latest(deployment: Deployment) -> MonitoringSnapshot | None:
    return MonitoringSnapshot.objects.filter(deployment=deployment).order_by("-window_end", "-id").first()


def series(deployment: Deployment, limit: int = 96) -> list[dict[str, Any]]:
    """Small per-snapshot numbers for the time charts (newest `limit` snapshots, oldest first).

    Reads only JSON paths of the stored snapshots: no prediction is touched.
    """
    rows = list(
        MonitoringSnapshot.objects.filter(deployment=deployment)
        .order_by("-window_end", "-id")
        .values_list("window_start", "window_end", "data")[:limit]
    )
    out = []
    for start, end, data in reversed(rows):
        perf = data.get("performance", {})
        traffic = data.get("traffic", {})
        out.append(
            {
                "window_start": start,
                "window_end": end,
                "predictions": traffic.get("predictions"),
                "error_rate": traffic.get("error_rate"),
                "latency_ms": traffic.get("latency_ms", {}),
                "max_psi": data.get("drift", {}).get("max_psi"),
                "n_drifted": data.get("drift", {}).get("n_drifted"),
                "performance": {k: v.get("value") for k, v in perf.get("metrics", {}).items()},
                "n_labels": perf.get("n_labels"),
                "model_version": data.get("model_version", {}).get("version"),
            }
        )
    return out


def open_alerts(deployment: Deployment) -> list[Alert]:
    return list(Alert.objects.filter(deployment=deployment, state=AlertState.FIRING).order_by("-first_fired_at"))


def health(deployment: Deployment) -> dict[str, Any]:
    """Health at a glance: ok / warning / critical / unknown, from firing alerts and the last snapshot."""
    firing = Alert.objects.filter(deployment=deployment, state=AlertState.FIRING).values_list("severity", flat=True)
    severities = set(firing)
    snap = snapshot_latest(deployment)
    if "critical" in severities:
        state = "critical"
    elif severities:
        state = "warning"
    elif snap is None:
        state = "unknown"
    else:
        state = "ok"
    return {"state": state, "firing": len(firing), "last_snapshot_at": snap.window_end if snap else None}


def retrain_jobs(deployment: Deployment, limit: int = 5):
    from jobs.models import Job

    return list(
        Job.objects.filter(kind="monitoring.retrain", target_type="deployment", target_id=deployment.pk).order_by(
            "-created_at"
        )[:limit]
    )


def _retrain_active(deployment: Deployment) -> bool:
    from jobs.models import Job, JobStatus

    return Job.objects.filter(
        kind="monitoring.retrain",
        target_type="deployment",
        target_id=deployment.pk,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
    ).exists()


# ------------------------------------------------------------------------------------ retrain


def retrain_start(*, deployment: Deployment, actor: Any, reason: str = "manual", holdout_fraction: float = 0.3):
    """Queue a retrain job: new data version, challenger, comparison on a fresh holdout."""
    from jobs.runner import job_enqueue
    from projects.services import audit_record

    if not isinstance(holdout_fraction, (int, float)) or isinstance(holdout_fraction, bool):
        raise InvalidInput("A number between 0.1 and 0.5.", field="holdout_fraction")
    if not 0.1 <= holdout_fraction <= 0.5:
        raise InvalidInput("A number between 0.1 and 0.5.", field="holdout_fraction")
    mv = deployment.model_version
    if mv.dataset_version_id is None:
        raise InvalidInput("The deployed model has no training dataset version to start from.", field="deployment")
    with transaction.atomic():
        job = job_enqueue(
            project=deployment.project,
            kind="monitoring.retrain",
            created_by=actor,
            params={
                "deployment_id": deployment.pk,
                "champion_id": mv.pk,
                "reason": reason,
                "holdout_fraction": float(holdout_fraction),
            },
            target=deployment,
            message="Retrain waiting for a worker",
        )
        audit_record(
            actor=actor,
            action="deployment.retrain",
            project=deployment.project,
            obj=deployment,
            data={"job": job.pk, "reason": reason},
            actor_label=None if actor is not None else "monitoring (auto-retrain)",
        )
    return job


def _primary_metric(project: Any, task_type: str, available: dict[str, Any]) -> str:
    preferred = getattr(project, "success_metric", "") or ""
    if preferred in available:
        return preferred
    for name in ("f1", "accuracy", "rmse", "mae", "r2"):
        if name in available:
            return name
    return next(iter(available), "")


def bootstrap_ci(
    task_type: str, y_true: list[Any], y_pred: list[Any], classes: list[Any], *, reps: int = 200, seed: int = 0
) -> dict[str, dict[str, float | None]]:
    """Metrics with a 95% percentile-bootstrap interval ({metric: {value, ci_low, ci_high}})."""
    point = metrics_for(task_type, y_true, y_pred, classes)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples: dict[str, list[float]] = {k: [] for k in point}
    t = np.array(y_true, dtype=object)
    p = np.array(y_pred, dtype=object)
    for _ in range(reps if n else 0):
        idx = rng.integers(0, n, n)
        for k, v in metrics_for(task_type, list(t[idx]), list(p[idx]), classes).items():
            samples[k].append(v)
    out: dict[str, dict[str, float | None]] = {}
    for k, v in point.items():
        arr = np.array([x for x in samples[k] if math.isfinite(x)])
        out[k] = {
            "value": v if math.isfinite(v) else None,
            "ci_low": float(np.percentile(arr, 2.5)) if arr.size else None,
            "ci_high": float(np.percentile(arr, 97.5)) if arr.size else None,
        }
    return out


def labelled_production_frame(deployment: Deployment, feature_names: list[str], target: str):
    """Every labelled production row of `deployment` (oldest first): inputs + actual + timestamps."""
    import pandas as pd

    rows = list(
        Prediction.objects.filter(deployment=deployment, actual__isnull=False)
        .exclude(source="shadow")
        .order_by("created_at", "id")
        .values_list("inputs", "actual", "created_at", "actual_at", "actual_source")
    )
    frame = pd.DataFrame([r[0] if isinstance(r[0], dict) else {} for r in rows], columns=feature_names)
    frame[target] = [r[1] for r in rows]
    meta = pd.DataFrame(
        {
            "created_at": [r[2] for r in rows],
            "actual_at": [r[3] for r in rows],
            "actual_source": [r[4] for r in rows],
        }
    )
    return frame, meta


def train_challenger(*, champion: ModelVersion, train: Any, features: list[str], target: str) -> Any:
    """Fit the champion's configuration on new data: the one call to repoint at experiments.

    The registered model is the whole fitted pipeline (preprocessing included), so an unfitted
    clone of it is exactly the champion's configuration (algorithm, hyperparameters, recipe
    steps). TODO(merge): when `experiments.services` can create an experiment from a parent's
    configuration, call it here and return its best run's pipeline.
    """
    from sklearn.base import clone

    from mlplatform.artifacts import model_load

    pipeline = clone(model_load(champion.artifact_key, champion.sha256))
    y = train[target]
    if champion.task_type == "classification":
        y = y.astype(type(champion.classes[0])) if champion.classes else y
    pipeline.fit(train[features], y)
    return pipeline


def _predict(model: Any, frame: Any) -> tuple[list[Any], list[float] | None]:
    preds = model.predict(frame)
    conf = None
    if hasattr(model, "predict_proba"):
        try:
            conf = np.max(model.predict_proba(frame), axis=1).tolist()
        except Exception:  # noqa: BLE001 - some estimators expose predict_proba but refuse at call time
            conf = None
    return [p.item() if hasattr(p, "item") else p for p in preds], conf


def retrain_run(*, job: Any, ctx: Any) -> dict[str, Any]:
    """The retrain job: data version, split, challenger, side-by-side on a fresh holdout.

    Idempotent: a second delivery finds the challenger registered by the first (lineage
    `retrain_job`) and returns its comparison.
    """
    import pandas as pd

    from datasets.models import VersionSource
    from datasets.selectors import locked_test_frame, split_frames
    from datasets.services import version_create_from_frame, version_split
    from deployments.monitoring_reference import reference_stats_build
    from mlplatform.artifacts import model_load, model_save
    from projects.services import audit_record

    done = ModelVersion.objects.filter(lineage__retrain_job=job.pk).first()
    if done is not None:
        return done.lineage.get("comparison", {}) | {"challenger_id": done.pk}
    params = job.params
    deployment = Deployment.objects.select_related("project").get(pk=params["deployment_id"])
    champion = ModelVersion.objects.select_related("dataset_version__dataset").get(pk=params["champion_id"])
    features = [f["name"] for f in champion.input_schema]
    target = champion.target
    dv = champion.dataset_version
    ctx.progress(5, "Reading the training data and the labelled production data")
    parts = split_frames(dv)
    base = pd.concat([parts.train, parts.val], ignore_index=True)
    prod, meta = labelled_production_frame(deployment, features, target)
    if len(prod) < 20:
        raise InvalidInput(
            f"Only {len(prod)} labelled production predictions; at least 20 are needed to retrain and compare.",
            field="deployment",
        )
    n_hold = max(10, round(len(prod) * float(params.get("holdout_fraction", 0.3))))
    holdout, fresh = prod.iloc[-n_hold:].reset_index(drop=True), prod.iloc[:-n_hold].reset_index(drop=True)
    if target in base.columns and len(fresh):
        try:
            fresh[target] = fresh[target].astype(base[target].dtype)
        except (TypeError, ValueError):
            pass
    combined = pd.concat([base, fresh.reindex(columns=base.columns)], ignore_index=True)
    ctx.progress(20, f"New dataset version: {len(base)} training rows + {len(fresh)} labelled production rows")
    fresh_meta = meta.iloc[: len(fresh)]
    source_detail = {
        "retrain_of_deployment": deployment.pk,
        "champion_model_version": champion.pk,
        "parent_rows": len(base),
        "production_rows": len(fresh),
        "production_from": fresh_meta["created_at"].min().isoformat() if len(fresh) else None,
        "production_to": fresh_meta["created_at"].max().isoformat() if len(fresh) else None,
        "labels_from": {str(k): int(v) for k, v in fresh_meta["actual_source"].value_counts().items()},
        "holdout_rows": len(holdout),
        "holdout_from": meta.iloc[-n_hold:]["created_at"].min().isoformat(),
        "job": job.pk,
    }
    version = version_create_from_frame(
        dataset=dv.dataset,
        frame=combined,
        source=VersionSource.RETRAIN,
        created_by=job.created_by,
        parent=dv,
        source_detail=source_detail,
        enqueue_profile=False,
    )
    split = dv.split or {}
    version = version_split(
        version=version,
        actor=job.created_by,
        strategy=split.get("strategy", "random") if split.get("strategy") != "time" else "random",
        test_size=float(split.get("test_size", 0.2)),
        val_size=float(split.get("val_size", 0.2)),
        seed=int(split.get("seed", 42)),
        column=split.get("column") if split.get("strategy") in ("group", "stratified") else None,
    )
    ctx.progress(40, "Training the challenger with the champion's configuration")
    new_parts = split_frames(version)
    train = pd.concat([new_parts.train, new_parts.val], ignore_index=True)
    challenger_model = train_challenger(champion=champion, train=train, features=features, target=target)
    ctx.progress(70, "Comparing challenger and champion on the fresh holdout")
    champion_model = model_load(champion.artifact_key, champion.sha256)
    y_hold = holdout[target].tolist()
    champ_pred, _ = _predict(champion_model, holdout[features])
    chall_pred, _ = _predict(challenger_model, holdout[features])
    classes = champion.classes or []
    champ_metrics = bootstrap_ci(champion.task_type, y_hold, champ_pred, classes)
    chall_metrics = bootstrap_ci(champion.task_type, y_hold, chall_pred, classes)
    primary = _primary_metric(deployment.project, champion.task_type, chall_metrics)
    lower = primary in LOWER_IS_BETTER
    a = (chall_metrics.get(primary) or {}).get("value")
    b = (champ_metrics.get(primary) or {}).get("value")
    better = a is not None and b is not None and (a < b if lower else a > b)
    # The challenger's own final evaluation: the new version's locked test rows (used once, here).
    test = locked_test_frame(version, purpose="final_evaluation")
    test_pred, _ = _predict(challenger_model, test[features])
    test_metrics = bootstrap_ci(champion.task_type, test[target].tolist(), test_pred, classes)
    ctx.progress(85, "Registering the challenger")
    stored = model_save(challenger_model, prefix=f"projects/{deployment.project_id}/models")
    sample = train.sample(n=min(len(train), 100_000), random_state=0)
    preds, confs = _predict(challenger_model, sample[features])
    reference = reference_stats_build(
        frame=sample[features],
        input_schema=champion.input_schema,
        predictions=np.asarray(preds, dtype=object if champion.task_type == "classification" else float),
        confidences=np.asarray(confs) if confs is not None else None,
    )
    comparison = {
        "deployment_id": deployment.pk,
        "champion": {"id": champion.pk, "version": champion.version, "metrics": champ_metrics},
        "challenger": {"version": None, "metrics": chall_metrics},
        "primary_metric": primary,
        "lower_is_better": lower,
        "challenger_better": better,
        "holdout_rows": len(holdout),
        "dataset_version_id": version.pk,
        "dataset_version_number": version.number,
    }
    from datasets.models import DatasetVersion

    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(test_used_at=timezone.now(), test_locked=True)
        number = (
            ModelVersion.objects.select_for_update().filter(project=deployment.project).order_by("-version").first()
        )
        challenger = ModelVersion.objects.create(
            project=deployment.project,
            version=(number.version if number else 0) + 1,
            experiment=champion.experiment,
            run=champion.run,
            dataset_version=version,
            name=champion.name,
            task_type=champion.task_type,
            target=target,
            classes=champion.classes,
            artifact_key=stored.key,
            sha256=stored.sha256,
            size_bytes=stored.size,
            input_schema=champion.input_schema,
            metrics={"cv": {}, "test": test_metrics, "holdout": chall_metrics},
            lineage={
                "retrain_job": job.pk,
                "retrain_of": champion.pk,
                "deployment": deployment.pk,
                "dataset_version": version.pk,
                "reason": params.get("reason", ""),
                "comparison": comparison | {"challenger": {"version": None, "metrics": chall_metrics}},
            },
            reference_stats=reference,
            created_by=job.created_by,
        )
        comparison["challenger"] = {"id": challenger.pk, "version": challenger.version, "metrics": chall_metrics}
        ModelVersion.objects.filter(pk=challenger.pk).update(lineage=challenger.lineage | {"comparison": comparison})
        audit_record(
            actor=job.created_by,
            action="model.retrain_register",
            project=deployment.project,
            obj=challenger,
            data={"champion": champion.pk, "primary_metric": primary, "challenger_better": better},
            actor_label=None if job.created_by else "monitoring (auto-retrain)",
        )
    return comparison | {"challenger_id": challenger.pk}


def gate_check_challenger(*, deployment: Deployment, challenger: ModelVersion) -> dict[str, Any]:
    """Promotion gate for a retrained challenger: the deployment gate (final test score beats the
    baseline and meets the success threshold, decision go) *and* it beat the deployed champion on
    the same fresh holdout."""
    from deployments.registry import gate_check

    comparison = (challenger.lineage or {}).get("comparison") or {}
    champion_id = (comparison.get("champion") or {}).get("id")
    checks = [
        {
            "name": "compared_with_deployed",
            "passed": champion_id == deployment.model_version_id,
            "detail": "Compared with the version deployed now"
            if champion_id == deployment.model_version_id
            else "The comparison was made against another version; retrain again",
        },
        {
            "name": "beats_champion",
            "passed": bool(comparison.get("challenger_better")),
            "detail": f"{comparison.get('primary_metric')} on {comparison.get('holdout_rows')} fresh rows",
        },
    ]
    project_gate = gate_check(challenger, deployment.project)
    checks.append(
        {
            "name": "deployment_gate",
            "passed": project_gate.passed,
            "detail": "Meets the project's bar" if project_gate.passed else "; ".join(project_gate.reasons),
        }
    )
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "project_gate": project_gate.as_dict()}


def challenger_promote(*, deployment: Deployment, challenger: ModelVersion, actor: Any) -> Deployment:
    """Make the challenger the deployed version, only through the gate (else 409).

    The promotion itself is the deployments service's (history, audit, webhooks), so a retrained
    version is promoted exactly like any other, plus the champion comparison.
    """
    from deployments.services import deployment_promote
    from mlplatform.errors import Conflict

    if challenger.project_id != deployment.project_id or not (challenger.lineage or {}).get("retrain_job"):
        raise InvalidInput("Not a retrained challenger of this project.", field="model_version")
    gate = gate_check_challenger(deployment=deployment, challenger=challenger)
    if not gate["passed"]:
        failed = [c["detail"] for c in gate["checks"] if not c["passed"]]
        raise Conflict("The promotion gate failed: " + "; ".join(failed))
    return deployment_promote(
        deployment=deployment,
        actor=actor,
        model_version=challenger,
        reason="Retrained challenger beat the champion on fresh data",
    )
