"""A deployment's monitoring settings: thresholds, window, sample sizes, alert channels."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from deployments.events import monitoring_updated_event
from deployments.models import Deployment
from mlplatform.errors import InvalidInput
from projects.destinations import destination_audit, destination_check

_UNSET: Any = object()

DEFAULTS: dict[str, Any] = {
    "psi_warn": 0.1,  # industry convention: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant
    "psi_alert": 0.2,
    "interval_minutes": 60,
    # Drift reads at most this many of the window's newest predictions: the KS test's power at
    # 100k rows is far beyond what a PSI threshold needs, and the read is the snapshot's main cost.
    "sample_size": 100_000,
    # Fewer rows than this: "not enough data yet", no drift verdict. PSI on 10 bins needs about
    # 100 rows before its sampling noise (about 9/n in-distribution) is small next to psi_warn.
    "min_samples": 100,
    # A feature drifts only when its test (KS / chi-square) is significant at this level after a
    # Holm correction over the window's features, and its PSI is past psi_alert.
    "drift_alpha": 0.01,
    "min_labels": 30,  # fewer labels than this: "not enough labels yet", no performance verdict
    "performance_window": 500,  # the live metric is over the newest N labelled predictions
    "missing_alert": 0.1,  # missing rate above the training one by this much
    "unseen_alert": 0.05,  # share of categories never seen in training
    "error_rate_alert": 0.05,
    "latency_p95_alert_ms": None,
    "alert_email": [],
    "alert_webhook_url": "",
}


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
            if key == "drift_alpha" and not 0 < value < 0.5:
                raise InvalidInput("A significance level between 0 and 0.5 (e.g. 0.01).", field=key)
            if key == "min_samples" and not 10 <= value <= 1_000_000:
                raise InvalidInput("Between 10 and 1000000 predictions.", field=key)
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
    """Change the settings (the caller checked Action.MANAGE_DEPLOYMENTS). The alert webhook's URL
    changes only through `projects.destinations` (roles that manage connections, netguard at save,
    audited as `destination.changed` with old and new value); sending back the current URL is no
    change. Alert deliveries are signed with the project's webhook secret."""
    if auto_retrain is not None and not isinstance(auto_retrain, bool):
        raise InvalidInput("true or false.", field="auto_retrain")
    values = dict(values)
    url = values.pop("alert_webhook_url", _UNSET)
    clean = monitoring_settings_validate(values)
    old_url = monitoring_settings(deployment)["alert_webhook_url"] or ""
    if url is not _UNSET and (not isinstance(url, str) or url.strip() != old_url):
        url = destination_check(actor=actor, project=deployment.project, field="alert_webhook_url", value=url)
    else:
        url = _UNSET
    auto = auto_retrain
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
        deployment.monitoring = (deployment.monitoring or {}) | clean
        if url is not _UNSET:
            old_url = (deployment.monitoring or {}).get("alert_webhook_url") or ""
            deployment.monitoring["alert_webhook_url"] = url
            destination_audit(
                actor=actor, project=deployment.project, obj=deployment, field="alert_webhook_url", old=old_url, new=url
            )
        fields = ["monitoring", "updated_at"]
        if isinstance(auto, bool):
            deployment.auto_retrain = auto
            fields.append("auto_retrain")
        deployment.save(update_fields=fields)
        changes = clean | ({"auto_retrain": auto} if isinstance(auto, bool) else {})
        if changes:
            monitoring_updated_event(actor=actor, deployment=deployment, changes=changes)
    return deployment


def monitoring_settings_shown(deployment: Deployment, *, show_destinations: bool) -> dict[str, Any]:
    """The settings as a role sees them: the alert webhook's URL (it often carries the receiver's
    token) only to roles that manage connections; others read whether one is set."""
    out = monitoring_settings(deployment)
    out["alert_webhook_set"] = bool(out["alert_webhook_url"])
    if not show_destinations:
        out["alert_webhook_url"] = None
    return out
