"""Snapshots: one window of a deployment's traffic, drift, data quality, live performance and
review health, computed once (by the `monitoring.snapshot` job, from beat or on demand) and stored,
so dashboards read only stored rows however many predictions are logged. Each snapshot then
evaluates the alert rules (`alerts`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deployments import prediction_store
from deployments.ml import columnar, drift, estimation
from deployments.ml.reference import CONFIDENCE, PREDICTION
from deployments.models import Deployment, DeploymentStatus, ModelVersion, MonitoringSnapshot, Prediction
from deployments.monitoring.services.alerts import alerts_evaluate
from deployments.monitoring.services.config import monitoring_settings
from deployments.monitoring.window import traffic_compute, window_columns
from deployments.registry.selectors import reference_arrays
from deployments.reviews import selectors as review_selectors
from deployments.reviews import services as review_services
from deployments.serving.services import predictions_flush
from experiments.ml.metrics import bootstrap_ci, default_positive, positive_index
from jobs.runner import job_enqueue
from mlplatform.errors import Conflict, InvalidInput
from projects.metrics import METRICS

SNAPSHOT_JOB = "monitoring.snapshot"
LIVE_BOOTSTRAP = 400  # resamples for a live metric's interval (at most performance_window labels)
ESTIMATION_ROWS = 5_000  # performance is estimated on at most this many of the window's newest predictions
ESTIMATION_SIMULATIONS = 300  # simulated label sets per estimate
REALIZED_BACKFILL = 48  # earlier snapshots (within a week) whose realized value is refreshed as labels arrive


def drift_compute(
    reference: dict[str, Any],
    n: int,
    columns: dict[str, list[Any]],
    predictions: list[Any],
    confidences: list[Any],
    *,
    conf: dict[str, Any],
) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """Per-feature drift and data quality (`drift.window_drift`: Holm over the features), and the
    drift of predictions and confidences (Holm over those two)."""
    arrays = reference_arrays(reference)
    opts = {"psi_warn": conf["psi_warn"], "psi_alert": conf["psi_alert"], "min_samples": conf["min_samples"]}
    verdict = {"alpha": conf["drift_alpha"], "psi_warn": conf["psi_warn"], "psi_alert": conf["psi_alert"]}
    results, quality = drift.window_drift(
        reference.get("features") or {}, arrays, columns, n, min_samples=conf["min_samples"], **verdict
    )
    features = [r.as_dict() for r in results]
    outs = reference.get("outputs") or {}
    out_results: dict[str, drift.FeatureDrift] = {}
    if PREDICTION in outs:
        ref = outs[PREDICTION]
        if ref["type"] == "numeric":
            out_results["prediction"] = drift.numeric_drift(
                "prediction", ref, arrays.get("prediction"), drift.to_numeric(predictions), **opts
            )
        else:
            out_results["prediction"] = drift.categorical_drift("prediction", ref, predictions, **opts)
    if CONFIDENCE in outs:
        ref = outs[CONFIDENCE]
        out_results["confidence"] = drift.numeric_drift(
            "confidence", ref, arrays.get("confidence"), drift.to_numeric(confidences), **opts
        )
    drift.statuses_assign(list(out_results.values()), **verdict)
    outputs = {name: r.as_dict() for name, r in out_results.items()}
    return features, quality, outputs


def _live_labels(mv: ModelVersion, rows: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Truth, predictions and (when every row has them) class probabilities, as the metrics take them.

    JSON may hold the class 1 as "1" (feedback from a client, a reviewer's form): both sides are
    mapped back to the model's own classes, compared as text.
    """
    if mv.task_type != "classification":
        truth = drift.to_numeric([r[1] for r in rows])
        pred = drift.to_numeric([r[0] for r in rows])
        ok = np.isfinite(truth) & np.isfinite(pred)
        return truth[ok], pred[ok], None
    classes = list(mv.classes or [])
    by_text = {str(c): c for c in classes}
    truth = np.asarray([by_text.get(str(r[1]), r[1]) for r in rows], dtype=object)
    pred = np.asarray([by_text.get(str(r[0]), r[0]) for r in rows], dtype=object)
    probs = [r[3] for r in rows]
    proba = None
    if classes and all(isinstance(p, dict) for p in probs):
        proba = np.asarray([[float(p.get(str(c)) or 0.0) for c in classes] for p in probs], dtype=float)
    return truth, pred, proba


def live_status(live: dict[str, Any], test: dict[str, Any], *, lower_is_better: bool, enough: bool) -> str:
    """A live metric against the test interval: "alert" only when the two 95% intervals do not
    overlap on the worse side (the live interval wholly below the test one, or above it for a
    lower-is-better metric). Non-overlap of two 95% intervals is a conservative test (about 1%
    false alarms when both have the same width), so a 40-label estimate never alerts on its
    sampling error alone; "insufficient" below min_labels or without intervals."""
    lo, hi = live.get("ci_low"), live.get("ci_high")
    t_lo, t_hi = test.get("ci_low"), test.get("ci_high")
    if not enough or lo is None or hi is None or t_lo is None or t_hi is None:
        return "insufficient"
    worse = lo > t_hi if lower_is_better else hi < t_lo
    return "alert" if worse else "ok"


def performance_compute(deployment: Deployment, end: datetime, conf: dict[str, Any]) -> dict[str, Any]:
    """Live metrics over the newest labelled predictions of the deployed model, each with its own
    bootstrap 95% interval, vs the test interval (`live_status`).

    Computed by the experiments' metrics (`experiments.ml.metrics`): the same definitions, the
    same positive class, the same bootstrap as the final evaluation they are compared with.
    """
    mv = deployment.model_version
    rows = list(
        # Newest labels first, through the (deployment, actual_at) index: ordering by the
        # prediction time would walk every unlabelled prediction of a busy deployment.
        Prediction.objects.filter(deployment=deployment, model_version=mv, actual_at__lt=end, actual__isnull=False)
        .exclude(source="shadow")
        .order_by("-actual_at", "-created_at")
        .values_list("prediction", "actual", "created_at", "probabilities")[: int(conf["performance_window"])]
    )
    test = (mv.metrics or {}).get("test") or {}
    min_labels = int(conf["min_labels"])
    result: dict[str, Any] = {"n_labels": len(rows), "min_labels": min_labels, "metrics": {}, "status": "insufficient"}
    if not rows:
        return result
    result["labels_from"] = min(r[2] for r in rows).isoformat()
    truth, pred, proba = _live_labels(mv, rows)
    classes = list(mv.classes or []) or None
    positive = mv.positive_class if mv.positive_class is not None else default_positive(classes or [])
    enough = len(rows) >= min_labels
    values: dict[str, dict[str, Any]] = {}
    if len(truth):
        labels = np.asarray(classes, dtype=object) if classes else None
        values = bootstrap_ci(mv.task_type, truth, pred, proba, labels, n_boot=LIVE_BOOTSTRAP, positive=positive)
    worst = "ok"
    for name, live in values.items():
        value = live.get("value")
        if value is None or not math.isfinite(value):
            continue  # not computable on these labels (one class only, zero targets for MAPE)
        entry: dict[str, Any] = {"value": value, "live_ci_low": live.get("ci_low"), "live_ci_high": live.get("ci_high")}
        ref = test.get(name)
        if isinstance(ref, dict) and name in METRICS:
            entry |= {"test": ref.get("value"), "ci_low": ref.get("ci_low"), "ci_high": ref.get("ci_high")}
            lower = not METRICS[name].higher_is_better
            entry["status"] = live_status(live, ref, lower_is_better=lower, enough=enough)
            worst = "alert" if entry["status"] == "alert" else worst
        result["metrics"][name] = entry
    result["status"] = worst if enough else "insufficient"
    return result


def estimation_metric(deployment: Deployment) -> str:
    """The metric estimated and alerted on: the project's success metric when it can be estimated,
    else the experiment's metric, else accuracy."""
    mv = deployment.model_version
    for name in (deployment.project.success_metric, (mv.metrics or {}).get("metric")):
        if name in estimation.ESTIMATED_METRICS:
            return name
    return "accuracy"


def _estimation_threshold(deployment: Deployment, metric: str) -> tuple[float | None, str]:
    """The bar the estimate is judged against: the project's success threshold when it is about
    this metric, else the low (high, for an error) end of the test interval."""
    project = deployment.project
    if project.success_metric == metric and project.success_threshold is not None:
        return float(project.success_threshold), "the project's success threshold"
    test = ((deployment.model_version.metrics or {}).get("test") or {}).get(metric) or {}
    bound = test.get("ci_low") if METRICS[metric].higher_is_better else test.get("ci_high")
    return (float(bound), "the test interval's pessimistic end") if bound is not None else (None, "")


def _window_query(deployment: Deployment, start: datetime, end: datetime):
    return Prediction.objects.filter(
        deployment=deployment, model_version=deployment.model_version, created_at__gte=start, created_at__lt=end
    ).exclude(source="shadow")


def _window_rows(deployment: Deployment, start: datetime, end: datetime) -> list[tuple]:
    """The window's newest ESTIMATION_ROWS predictions as (prediction, actual, created_at,
    probabilities): PostgreSQL columns (no feature is read), and the batch predictions that live
    only in segments (prediction and probabilities columns; no label: nothing can send one)."""
    rows = _window_query(deployment, start, end).order_by("-created_at")
    rows = list(rows.values_list("prediction", "actual", "created_at", "probabilities")[:ESTIMATION_ROWS])
    if not prediction_store.enabled():
        return rows
    mv = deployment.model_version
    table = prediction_store.segment_only_table(
        deployment,
        start,
        end,
        [columnar.CREATED_AT, columnar.PREDICTION, columnar.PROBABILITIES],
        model_version_id=mv.pk,
    )
    if not table.num_rows or columnar.PROBABILITIES not in table.column_names:
        return rows
    table = table.sort_by([(columnar.CREATED_AT, "descending")]).slice(0, ESTIMATION_ROWS)
    classes = [str(c) for c in mv.classes or []]
    for when, pred, proba in zip(
        table.column(columnar.CREATED_AT).to_pylist(),
        table.column(columnar.PREDICTION).to_pylist(),
        table.column(columnar.PROBABILITIES).to_pylist(),
        strict=True,
    ):
        probabilities = (
            dict(zip(classes, proba, strict=True)) if proba is not None and len(proba) == len(classes) else None
        )
        rows.append((pred, None, when, probabilities))
    rows.sort(key=lambda r: r[2], reverse=True)
    return rows[:ESTIMATION_ROWS]


def _usable(deployment: Deployment, rows: list[tuple]) -> list[tuple]:
    """Rows with class probabilities and a prediction among the model's classes."""
    known = {str(c) for c in deployment.model_version.classes or []}
    return [r for r in rows if isinstance(r[3], dict) and str(r[0]) in known]


def realized_compute(deployment: Deployment, rows: list[tuple], metric: str) -> dict[str, Any]:
    """The realized metric on the window's labelled rows, with its bootstrap 95% interval."""
    labelled = [r for r in rows if r[1] is not None]
    out: dict[str, Any] = {"n_labels": len(labelled), "value": None, "ci_low": None, "ci_high": None}
    if not labelled:
        return out
    mv = deployment.model_version
    truth, pred, proba = _live_labels(mv, labelled)
    classes = list(mv.classes or [])
    positive = mv.positive_class if mv.positive_class is not None else default_positive(classes)
    values = bootstrap_ci(
        mv.task_type, truth, pred, proba, np.asarray(classes, dtype=object), n_boot=200, positive=positive
    )
    entry = values.get(metric) or {}
    if entry.get("value") is not None and math.isfinite(entry["value"]):
        out |= {"value": entry["value"], "ci_low": entry.get("ci_low"), "ci_high": entry.get("ci_high")}
    return out


def estimation_compute(deployment: Deployment, start: datetime, end: datetime, conf: dict[str, Any]) -> dict[str, Any]:
    """The window's performance estimated from the model's probabilities (`deployments.ml.estimation`),
    with the model's calibration verdict, the bar it is judged against and, when some of the
    window's predictions already have labels, the realized value beside it."""
    mv = deployment.model_version
    if mv.task_type != "classification":
        return {"status": "not_estimated", "reason": estimation.REGRESSION_REASON}
    calibration = (mv.metrics or {}).get("calibration") or {"status": "unknown"}
    metric = estimation_metric(deployment)
    threshold, threshold_source = _estimation_threshold(deployment, metric)
    min_rows = int(conf["min_samples"])
    result: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": METRICS[metric].higher_is_better,
        "calibration": {k: v for k, v in calibration.items() if k != "calibrator"},
        "calibration_text": estimation.calibration_text(calibration),
        "reliable": calibration.get("status") == "calibrated",
        "threshold": threshold,
        "threshold_source": threshold_source,
        "min_rows": min_rows,
        "n_rows": 0,
        "status": "insufficient",
        "metrics": {},
        "realized": {"n_labels": 0, "value": None, "ci_low": None, "ci_high": None},
    }
    rows = _window_rows(deployment, start, end)
    classes = list(mv.classes or [])
    by_text = {str(c): i for i, c in enumerate(classes)}
    usable = _usable(deployment, rows)
    result["n_rows"] = len(usable)
    if not usable or len(classes) < 2:
        return result
    proba = np.asarray([[float(r[3].get(str(c)) or 0.0) for c in classes] for r in usable], dtype=float)
    pred_idx = np.asarray([by_text[str(r[0])] for r in usable], dtype=np.int64)
    positive = mv.positive_class if mv.positive_class is not None else default_positive(classes)
    proba = estimation.confidences_for_estimate(proba, calibration)
    result["metrics"] = estimation.estimate_classification(
        proba, pred_idx, positive=positive_index(classes, positive), n_sim=ESTIMATION_SIMULATIONS
    )
    result["realized"] = realized_compute(deployment, usable, metric)
    est = result["metrics"].get(metric) or {}
    if est.get("value") is None:
        result["status"] = "not_estimable"
        result["reason"] = f"{metric} cannot be estimated on this window (one class in every simulated window)"
    elif len(usable) < min_rows:
        result["status"] = "insufficient"
    elif not result["reliable"] or threshold is None:
        result["status"] = "unreliable" if not result["reliable"] else "no_threshold"
    else:
        worse = est["ci_high"] < threshold if result["higher_is_better"] else est["ci_low"] > threshold
        result["status"] = "alert" if worse else "ok"
    return result


def realized_backfill(deployment: Deployment, *, before: datetime) -> int:
    """Labels come late: refresh the realized value beside the estimate of earlier snapshots (up to
    REALIZED_BACKFILL of the past week) whose windows gained labels since. Returns how many."""
    snaps = list(
        MonitoringSnapshot.objects.filter(
            deployment=deployment,
            window_end__lte=before,
            window_end__gt=before - timedelta(days=7),
            data__estimation__metric__isnull=False,
        ).order_by("-window_end")[:REALIZED_BACKFILL]
    )
    changed = 0
    for snap in snaps:
        est = snap.data.get("estimation") or {}
        if (snap.data.get("model_version") or {}).get("id") != deployment.model_version_id:
            continue
        stored = (est.get("realized") or {}).get("n_labels") or 0
        if stored >= est.get("n_rows", 0):
            continue  # every estimated row already had its label
        # Labels among the rows the estimate was over (the window's newest ESTIMATION_ROWS).
        newest = _window_query(deployment, snap.window_start, snap.window_end).order_by("-created_at")
        labelled = Prediction.objects.filter(
            pk__in=Subquery(newest.values("pk")[:ESTIMATION_ROWS]), actual__isnull=False
        ).count()
        if labelled == stored:
            continue
        rows = _usable(deployment, _window_rows(deployment, snap.window_start, snap.window_end))
        est["realized"] = drift.json_safe(realized_compute(deployment, rows, est["metric"]))
        snap.data["estimation"] = est
        MonitoringSnapshot.objects.filter(pk=snap.pk).update(data=snap.data)
        changed += 1
    return changed


def review_compute(deployment: Deployment) -> dict[str, Any]:
    """The review queue's health (overdue items escalate their SLA alert first)."""
    review_services.review_sla_check(deployment=deployment)
    return dict(review_selectors.review_health(deployment=deployment))


def snapshot_compute(
    *,
    deployment: Deployment,
    window_end: datetime | None = None,
    window_minutes: int | None = None,
    job_id: int | None = None,
) -> MonitoringSnapshot:
    """Compute and store one snapshot of `deployment`, then evaluate the alert rules on it."""
    predictions_flush()  # the window's last predictions may still be on their way to the log
    deployment = Deployment.objects.select_related("model_version", "project").get(pk=deployment.pk)
    conf = monitoring_settings(deployment)
    end = window_end or timezone.now()
    start = end - timedelta(minutes=int(window_minutes or conf["interval_minutes"]))
    mv = deployment.model_version
    reference = mv.reference_stats or {}
    n, columns, preds, confs = window_columns(deployment, start, end, int(conf["sample_size"]), reference)
    features, quality, outputs = drift_compute(reference, n, columns, preds, confs, conf=conf)
    scored = [f for f in features if f["psi"] is not None]
    data = {
        "model_version": {"id": mv.pk, "version": mv.version},
        "settings": {
            k: conf[k]
            for k in (
                "psi_warn",
                "psi_alert",
                "drift_alpha",
                "min_samples",
                "min_labels",
                "interval_minutes",
                "sample_size",
            )
        },
        "traffic": traffic_compute(deployment, start, end),
        "drift": {
            "sample_size": n,
            "min_samples": int(conf["min_samples"]),
            "enough": n >= int(conf["min_samples"]),
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
        "estimation": estimation_compute(deployment, start, end, conf),
        "review": review_compute(deployment),
        "job_id": job_id,
    }
    data = drift.json_safe(data)
    realized_backfill(deployment, before=start)
    with transaction.atomic():
        snapshot = MonitoringSnapshot.objects.create(
            project=deployment.project, deployment=deployment, window_start=start, window_end=end, data=data
        )
        Deployment.objects.filter(pk=deployment.pk).update(last_snapshot_at=end)
        alerts_evaluate(deployment=deployment, snapshot=snapshot, conf=conf)
    return snapshot


def snapshot_request(*, deployment: Deployment, actor: Any, window_minutes: int | None = None):
    """Queue an on-demand snapshot job (returns the job)."""
    if window_minutes is not None and (
        isinstance(window_minutes, bool) or not isinstance(window_minutes, int) or not 1 <= window_minutes <= 525_600
    ):
        raise InvalidInput("A whole number of minutes between 1 and 525600.", field="window_minutes")
    if deployment.model_version.archived_at is not None:  # a retired deployment's, once retention ran
        raise Conflict(
            f"v{deployment.model_version.version}'s drift reference was deleted by the model retention: "
            "no new snapshot; the stored ones remain.",
            field="deployment",
        )
    with transaction.atomic():
        return job_enqueue(
            project=deployment.project,
            kind=SNAPSHOT_JOB,
            created_by=actor,
            params={"deployment_id": deployment.pk, "window_minutes": window_minutes, "on_demand": True},
            target=deployment,
            message="Snapshot waiting for a worker",
        )


def snapshot_run(*, job_id: int, params: dict[str, Any], ctx: Any = None) -> dict[str, Any]:
    """The `monitoring.snapshot` job's work. A redelivered job finds the snapshot its first
    delivery stored instead of computing another."""
    deployment = Deployment.objects.filter(pk=params["deployment_id"]).first()
    if deployment is None:
        return {"skipped": "deployment deleted"}
    snap = MonitoringSnapshot.objects.filter(deployment=deployment, data__job_id=job_id).first()
    if snap is None:
        if ctx is not None:
            ctx.progress(10, "Computing traffic, drift, quality and live performance")
        end = params.get("window_end")
        snap = snapshot_compute(
            deployment=deployment,
            window_end=parse_datetime(end) if end else None,
            window_minutes=params.get("window_minutes"),
            job_id=job_id,
        )
    drift_summary = snap.data["drift"]
    return {
        "snapshot_id": snap.pk,
        "sample_size": drift_summary["sample_size"],
        "n_drifted": drift_summary["n_drifted"],
        "max_psi": drift_summary["max_psi"],
    }


# --- periodic snapshots (beat: deployments.tasks.schedule_snapshots, every minute) ----------------------


def schedule_due_snapshots() -> int:
    """Queue snapshot jobs for deployments whose interval has passed; returns how many.

    Each deployment is claimed with a conditional UPDATE on `last_snapshot_at` (the value read
    must still be there), so two beat processes, or a beat tick that overlaps a slow one,
    never queue the same snapshot twice.
    """
    now = timezone.now()
    queued = 0
    rows = Deployment.objects.filter(status=DeploymentStatus.ACTIVE).select_related("project")
    for deployment in rows:
        interval = timedelta(minutes=int(monitoring_settings(deployment)["interval_minutes"]))
        last = deployment.last_snapshot_at
        if last is not None and last + interval > now:
            continue
        with transaction.atomic():
            claimed = Deployment.objects.filter(pk=deployment.pk, last_snapshot_at=last).update(last_snapshot_at=now)
            if not claimed:
                continue
            job_enqueue(
                project=deployment.project,
                kind=SNAPSHOT_JOB,
                params={
                    "deployment_id": deployment.pk,
                    "window_end": now.isoformat(),
                    "window_minutes": int(interval.total_seconds() // 60),
                },
                target=deployment,
                message="Scheduled snapshot waiting for a worker",
            )
            queued += 1
    return queued
