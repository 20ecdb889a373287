"""Alert rules evaluated on every snapshot: fired, refreshed and resolved in the snapshot's
transaction (one firing alert per key, by a database constraint), sent by e-mail and webhook,
acknowledged by owners and editors; a drift or performance alert may start a retrain."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings as dj_settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from deployments.events import alert_acknowledged_event
from deployments.ml.drift import alert_threshold
from deployments.models import Alert, AlertState, Deployment, MonitoringSnapshot
from deployments.monitoring.selectors import retrain_active
from deployments.monitoring.services.retrain import retrain_start
from jobs.webhooks import webhook_enqueue
from projects.metrics import METRICS

logger = logging.getLogger(__name__)

Rule = dict[str, Any]  # key, kind, severity, firing, value, threshold, message


def _p_text(p: float | None) -> str:
    if p is None:
        return "no test"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _drift_message(f: dict[str, Any], what: str, threshold: float) -> str:
    """Readable: what moved, by how much, on how many rows, and why it is not noise."""
    test = "KS test" if f.get("test") == "ks" else "chi-square test"
    return (
        f"{what} drifted: PSI {f['psi']:.2f} (alert level {threshold:.2f} at this volume) over "
        f"{f['n_current']:,} predictions "
        f"({test}, {_p_text(f.get('p_adjusted', f.get('p_value')))} after correcting for the features tested)"
    )


def _threshold(f: dict[str, Any], conf: dict[str, Any]) -> float:
    """The PSI this feature's window had to pass (it depends on the volume)."""
    return alert_threshold(
        f["n_current"], len(f["reference_shares"]), psi_warn=conf["psi_warn"], psi_alert=conf["psi_alert"]
    )


def _drift_rules(data: dict[str, Any], conf: dict[str, Any]) -> list[Rule]:
    """Drift verdicts come with the snapshot (`drift.statuses_assign`: significance after a Holm
    correction AND an effect size that depends on the volume); below min_samples no rule runs,
    so a firing alert stays as it was until a window has enough data to decide."""
    rules: list[Rule] = []
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
                "threshold": _threshold(f, conf),
                "message": _drift_message(f, f"Feature {f['feature']}", _threshold(f, conf)),
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
                "threshold": _threshold(out, conf),
                "message": _drift_message(out, f"The {name} distribution", _threshold(out, conf)),
            }
        )
    return rules


def _performance_rules(data: dict[str, Any]) -> list[Rule]:
    rules: list[Rule] = []
    perf = data["performance"]
    if perf["status"] != "insufficient":
        for name, m in perf["metrics"].items():
            if "status" not in m or m["status"] == "insufficient":
                continue
            lower = name in METRICS and not METRICS[name].higher_is_better
            bound = m.get("ci_high") if lower else m.get("ci_low")
            live = f"{m['value']:.3g}"
            if m.get("live_ci_low") is not None:
                live += f" (95% CI {m['live_ci_low']:.3g} to {m['live_ci_high']:.3g})"
            rules.append(
                {
                    "key": f"performance:{name}",
                    "kind": "performance",
                    "severity": "critical",
                    "firing": m["status"] == "alert",
                    "value": m["value"],
                    "threshold": bound,
                    "message": f"Live {name} {live} over {perf['n_labels']:,} labels is clearly "
                    f"{'above' if lower else 'below'} the test interval {m['ci_low']:.3g} to {m['ci_high']:.3g}",
                }
            )
    return rules


def _estimation_rules(data: dict[str, Any]) -> list[Rule]:
    """The estimated performance (before labels): evaluated only on a calibrated model's window with
    at least min_samples rows and a bar to judge it by; it fires when the whole 95% interval of
    the estimate is on the wrong side of the bar, so the sampling noise of a window never fires it.
    Windows not judged (too few rows, an uncalibrated model) leave the alert as it was."""
    est = data.get("estimation") or {}
    if est.get("status") not in ("ok", "alert"):
        return []
    metric = est["metric"]
    m = est["metrics"][metric]
    lower = not est.get("higher_is_better", True)
    side = "above" if lower else "below"
    return [
        {
            "key": f"estimated_performance:{metric}",
            "kind": "estimated_performance",
            "severity": "warning",
            "firing": est["status"] == "alert",
            "value": m["value"],
            "threshold": est["threshold"],
            "message": f"Estimated {metric} {m['value']:.3g} (95% interval {m['ci_low']:.3g} to {m['ci_high']:.3g}) "
            f"over {est['n_rows']:,} predictions without labels is wholly {side} {est['threshold_source']} "
            f"{est['threshold']:.3g}",
        }
    ]


def _quality_rules(data: dict[str, Any], conf: dict[str, Any]) -> list[Rule]:
    rules: list[Rule] = []
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
    return rules


def _operations_rules(data: dict[str, Any], conf: dict[str, Any]) -> list[Rule]:
    rules: list[Rule] = []
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


def _rules(data: dict[str, Any], conf: dict[str, Any]) -> list[Rule]:
    """Every rule evaluated on this snapshot: (key, firing or not). Unevaluated keys are left alone."""
    return [
        *_drift_rules(data, conf),
        *_performance_rules(data),
        *_estimation_rules(data),
        *_quality_rules(data, conf),
        *_operations_rules(data, conf),
    ]


def alerts_evaluate(*, deployment: Deployment, snapshot: MonitoringSnapshot, conf: dict[str, Any]) -> list[Alert]:
    """Fire, refresh and resolve alerts from one snapshot. Call inside its transaction.

    Deduplication is the database's unique constraint "one firing alert per key": a second
    worker evaluating the same rule at the same moment gets an IntegrityError and updates the
    existing row instead.
    """
    now = timezone.now()
    fired: list[Alert] = []
    resolved: list[Alert] = []
    for rule in _rules(snapshot.data, conf):
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
        if not retrain_active(deployment):
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
    payload = {"event": event, "project": deployment.project_id, "alert": alert_payload(alert)}
    url = conf.get("alert_webhook_url") or ""
    if url:
        webhook_enqueue(
            project=deployment.project, url=url, secret=deployment.project.webhook_secret, event=event, payload=payload
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
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is None:
            alert.acknowledged_by = actor
            alert.acknowledged_at = timezone.now()
            alert.save(update_fields=["acknowledged_by", "acknowledged_at", "last_seen_at"])
            alert_acknowledged_event(actor=actor, alert=alert)
    return alert
