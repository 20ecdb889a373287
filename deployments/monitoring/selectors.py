"""Monitoring's reads, from stored snapshots and alerts only (no prediction is read): the latest
snapshot, the series for the charts, open alerts, health at a glance, recent retrains."""

from __future__ import annotations

from typing import Any

from deployments.models import Alert, AlertState, Deployment, MonitoringSnapshot
from jobs.models import Job, JobStatus

RETRAIN_JOB = "monitoring.retrain"


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
