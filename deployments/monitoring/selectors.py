"""Monitoring's reads, from stored snapshots and alerts only (no prediction is read): the latest
snapshot, the series for the charts, open alerts, health at a glance, recent retrains."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from deployments.models import Alert, AlertState, Deployment, MonitoringSnapshot
from jobs.models import Job, JobStatus
from mlplatform.errors import InvalidInput

RETRAIN_JOB = "monitoring.retrain"


def snapshot_latest(deployment: Deployment) -> MonitoringSnapshot | None:
    return MonitoringSnapshot.objects.filter(deployment=deployment).order_by("-window_end", "-id").first()


RANGES: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_RANGE = "7d"


def series_range(value: str | None) -> str:
    """The time charts' range from a `range` parameter (24h, 7d, 30d, 90d); raises naming it."""
    if value in (None, ""):
        return DEFAULT_RANGE
    if value not in RANGES:
        raise InvalidInput(f"Choose one of {', '.join(RANGES)}.", field="range")
    return value


SERIES_MAX = 2_500  # points per chart: 90 days of hourly snapshots fit


def series(deployment: Deployment, since: datetime | None = None, limit: int = SERIES_MAX) -> list[dict[str, Any]]:
    """Small per-snapshot numbers for the time charts (snapshots ending after `since`, at most
    the newest `limit`, oldest first).

    Reads only small JSON paths of the stored snapshots (not their drift tables): no prediction
    is touched.
    """
    rows = MonitoringSnapshot.objects.filter(deployment=deployment)
    if since is not None:
        rows = rows.filter(window_end__gt=since)
    rows = list(
        rows.order_by("-window_end", "-id").values(
            "window_start",
            "window_end",
            "data__traffic",
            "data__drift__max_psi",
            "data__drift__n_drifted",
            "data__drift__enough",
            "data__performance",
            "data__estimation",
            "data__model_version__version",
        )[:limit]
    )
    rows = [{k.removeprefix("data__"): v for k, v in r.items()} for r in rows]
    out = []
    for r in reversed(rows):
        perf = r["performance"] or {}
        traffic = r["traffic"] or {}
        out.append(
            {
                "window_start": r["window_start"],
                "window_end": r["window_end"],
                "predictions": traffic.get("predictions"),
                "requests": traffic.get("requests"),
                "rows_per_request": traffic.get("rows_per_request") or {},
                "error_rate": traffic.get("error_rate"),
                "latency_ms": traffic.get("latency_ms", {}),
                "max_psi": r["drift__max_psi"],
                "n_drifted": r["drift__n_drifted"],
                "drift_enough": r["drift__enough"],
                "performance": {
                    k: {"value": v.get("value"), "low": v.get("live_ci_low"), "high": v.get("live_ci_high")}
                    for k, v in (perf.get("metrics") or {}).items()
                },
                "n_labels": perf.get("n_labels"),
                "estimation": _estimation_point(r["estimation"]),
                "model_version": r["model_version__version"],
            }
        )
    return out


def _estimation_point(est: dict[str, Any] | None) -> dict[str, Any] | None:
    """One window's estimate (value, 95% interval, rows) and realized value (labels so far)."""
    if not est or not est.get("metric"):
        return None
    m = (est.get("metrics") or {}).get(est["metric"]) or {}
    realized = est.get("realized") or {}
    return {
        "metric": est["metric"],
        "value": m.get("value"),
        "low": m.get("ci_low"),
        "high": m.get("ci_high"),
        "n_rows": est.get("n_rows"),
        "status": est.get("status"),
        "realized": realized.get("value"),
        "realized_low": realized.get("ci_low"),
        "realized_high": realized.get("ci_high"),
        "n_labels": realized.get("n_labels"),
    }


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


def retrain_jobs(deployment: Deployment, limit: int = 5) -> list[Job]:
    return list(
        Job.objects.filter(kind=RETRAIN_JOB, target_type="deployment", target_id=deployment.pk).order_by("-created_at")[
            :limit
        ]
    )


def retrain_active(deployment: Deployment) -> bool:
    """Is a retrain of this deployment queued or running?"""
    return Job.objects.filter(
        kind=RETRAIN_JOB,
        target_type="deployment",
        target_id=deployment.pk,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
    ).exists()
