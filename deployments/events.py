"""The deployments app's audit events: one typed constructor per event (Saleor `order/events.py`).

Each constructor fixes the event type and shapes its payload, so a change to a deployment, a
key, a review or an alert is recorded the same way by every room. Call them inside the
transaction of the change they record.
"""

from __future__ import annotations

from typing import Any

from deployments.models import Alert, ApiKey, Deployment, ModelVersion, ReviewItem, ReviewStatus
from projects.events import AuditAction
from projects.models import AuditEvent
from projects.services import audit_record

RETRAIN_ACTOR = "monitoring (auto-retrain)"  # who started a retrain that no user asked for


def _system_label(actor: Any) -> str | None:
    return None if actor is not None else RETRAIN_ACTOR


# --- registry ------------------------------------------------------------------------------------------


def model_registered_event(*, actor: Any, version: ModelVersion, origin: dict[str, Any]) -> AuditEvent:
    """A new model version (from a run's final evaluation, or from a retrain: `origin` says which)."""
    return audit_record(
        actor=actor,
        action=AuditAction.MODEL_REGISTERED,
        project=version.project,
        obj=version,
        data=origin,
        actor_label=_system_label(actor) if origin.get("retrain_job") else None,
    )


def model_retrain_registered_event(
    *, actor: Any, challenger: ModelVersion, champion: ModelVersion, primary_metric: str, better: bool
) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.MODEL_RETRAIN_REGISTERED,
        project=challenger.project,
        obj=challenger,
        data={"champion": champion.pk, "primary_metric": primary_metric, "challenger_better": better},
        actor_label=_system_label(actor),
    )


# --- rollout -------------------------------------------------------------------------------------------


def deployment_created_event(
    *, actor: Any, deployment: Deployment, version: ModelVersion, gate: dict[str, Any]
) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_CREATED,
        project=deployment.project,
        obj=deployment,
        data={"version": version.version, "gate": gate},
    )


def deployment_promoted_event(
    *, actor: Any, deployment: Deployment, previous: ModelVersion, version: ModelVersion, reason: str
) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_PROMOTED,
        project=deployment.project,
        obj=deployment,
        data={"from": previous.version, "to": version.version, "reason": reason},
    )


def deployment_updated_event(
    *, actor: Any, deployment: Deployment, before: dict[str, Any], after: dict[str, Any]
) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_UPDATED,
        project=deployment.project,
        obj=deployment,
        data={"before": before, "after": after},
    )


def deployment_rolled_back_event(
    *, actor: Any, deployment: Deployment, current: ModelVersion, target: ModelVersion, reason: str
) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_ROLLED_BACK,
        project=deployment.project,
        obj=deployment,
        data={"from": current.version, "to": target.version, "reason": reason},
    )


def deployment_status_event(*, actor: Any, deployment: Deployment, paused: bool, reason: str) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_PAUSED if paused else AuditAction.DEPLOYMENT_RESUMED,
        project=deployment.project,
        obj=deployment,
        data={"reason": reason},
    )


def deployment_shadow_set_event(*, actor: Any, deployment: Deployment, shadow: ModelVersion | None) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_SHADOW_SET,
        project=deployment.project,
        obj=deployment,
        data={"shadow": shadow.version if shadow else None},
    )


def deployment_threshold_set_event(
    *, actor: Any, deployment: Deployment, before: float | None, after: float | None, reason: str
) -> AuditEvent:
    """The decision threshold of a binary classifier changed (None: the most probable class)."""
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_THRESHOLD_SET,
        project=deployment.project,
        obj=deployment,
        data={
            "before": before,
            "after": after,
            "version": deployment.model_version.version,
            "positive_class": deployment.model_version.positive_class,
            "reason": reason,
        },
    )


def deployment_retired_event(*, actor: Any, deployment: Deployment, reason: str, reviews_closed: int) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_RETIRED,
        project=deployment.project,
        obj=deployment,
        data={"version": deployment.model_version.version, "reason": reason, "reviews_closed": reviews_closed},
    )


def gate_overridden_event(*, deployment: Deployment, override: dict[str, Any]) -> AuditEvent:
    """An owner deployed a version the gate refused; `override` holds who, when, why and the gate."""
    return audit_record(
        actor=None,
        action=AuditAction.GATE_OVERRIDDEN,
        project=deployment.project,
        obj=deployment,
        data=override,
        actor_label=override["by"],
    )


# --- serving and batch ---------------------------------------------------------------------------------


def api_key_created_event(*, actor: Any, api_key: ApiKey) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.API_KEY_CREATED,
        project=api_key.project,
        obj=api_key,
        data={"name": api_key.name},
    )


def api_key_revoked_event(*, actor: Any, api_key: ApiKey) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.API_KEY_REVOKED,
        project=api_key.project,
        obj=api_key,
        data={"name": api_key.name},
    )


def batch_started_event(*, actor: Any, deployment: Deployment, job_id: int, output_format: str) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_BATCH_STARTED,
        project=deployment.project,
        obj=deployment,
        data={"job": job_id, "format": output_format},
    )


# --- reviews -------------------------------------------------------------------------------------------

_REVIEW_ACTIONS = {
    ReviewStatus.APPROVED: AuditAction.REVIEW_APPROVED,
    ReviewStatus.OVERRIDDEN: AuditAction.REVIEW_OVERRIDDEN,
    ReviewStatus.ESCALATED: AuditAction.REVIEW_ESCALATED,
}


def review_decided_event(
    *, actor: Any, item: ReviewItem, status: str, model_said: Any, human_said: Any, waited: float, comment: str
) -> AuditEvent:
    """A reviewer approved, overrode or escalated one item."""
    return audit_record(
        actor=actor,
        action=_REVIEW_ACTIONS[ReviewStatus(status)],
        project=item.project,
        obj=item,
        data={
            "prediction": str(item.prediction_id),
            "deployment": item.deployment_id,
            "reason": item.reason,
            "confidence": item.confidence,
            "model_said": model_said,
            "human_said": human_said,
            "waited_seconds": round(waited, 3),
            "comment": comment,
        },
    )


def review_policy_updated_event(*, actor: Any, deployment: Deployment, changed: dict[str, Any]) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_REVIEW_POLICY_UPDATED,
        project=deployment.project,
        obj=deployment,
        data={"changed": changed},
    )


# --- monitoring ----------------------------------------------------------------------------------------


def feedback_recorded_event(*, actor: Any, deployment: Deployment, count: int, caller: str = "") -> AuditEvent:
    """Ground truth for `count` predictions; `caller` names an application's key ("key:<id>")."""
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_FEEDBACK,
        project=deployment.project,
        obj=deployment,
        data={"count": count},
        actor_label=caller or None,
    )


def monitoring_updated_event(*, actor: Any, deployment: Deployment, changes: dict[str, Any]) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_MONITORING_UPDATED,
        project=deployment.project,
        obj=deployment,
        data=changes,
    )


def retrain_started_event(*, actor: Any, deployment: Deployment, job_id: int, reason: str) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.DEPLOYMENT_RETRAIN,
        project=deployment.project,
        obj=deployment,
        data={"job": job_id, "reason": reason},
        actor_label=_system_label(actor),
    )


def alert_acknowledged_event(*, actor: Any, alert: Alert) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.ALERT_ACKNOWLEDGED,
        project=alert.project,
        obj=alert,
        data={"key": alert.key},
    )
