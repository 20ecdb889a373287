"""The audit log's vocabulary: every event type the platform records, in one enum.

`projects.services.audit_record` refuses any other value, so a typo or an undeclared event is
an error at the first test, not a free-text string in the log. The stored values are the strings
below, unchanged from when they were written by hand (no data migration). Apps wrap their
events in typed constructors that build the payload (`deployments/events.py`,
`experiments/events.py`, Saleor's `order/events.py` style); the other apps pass a member.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # projects
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_DECIDED = "project.decided"
    PROJECT_DELETED = "project.deleted"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    PROJECT_WEBHOOK_SECRET_ROTATED = "project.webhook_secret_rotated"  # noqa: S105 - an event name
    PROJECT_WEBHOOK_SECRET_SHOWN = "project.webhook_secret_shown"  # noqa: S105 - an event name
    DESTINATION_CHANGED = "destination.changed"  # any outbound URL (webhooks), with old and new value
    # jobs
    JOB_CANCELLED = "job.cancelled"
    # datasets
    DATASET_CREATED = "dataset.created"
    DATASET_VERSION_UPLOADED = "dataset_version.uploaded"
    DATASET_VERSION_URL_IMPORT = "dataset_version.url_import"
    DATASET_VERSION_SQL_QUERY = "dataset_version.sql_query"
    DATASET_VERSION_APPENDED = "dataset_version.appended"
    DATASET_VERSION_CLEANED = "dataset_version.cleaned"
    DATASET_VERSION_SPLIT = "dataset_version.split"
    DATASET_VERSION_SPLIT_REQUESTED = "dataset_version.split_requested"
    DATASET_VERSION_TARGET = "dataset_version.target"
    RECIPE_SAVED = "recipe.saved"
    SQL_CONNECTION_CREATED = "sql_connection.created"
    SQL_CONNECTION_DELETED = "sql_connection.deleted"
    # experiments
    EXPERIMENT_CREATED = "experiment.created"
    EXPERIMENT_CANCELLED = "experiment.cancelled"
    EXPERIMENT_EVALUATION_STARTED = "experiment.evaluation_started"
    EXPERIMENT_EVALUATED = "experiment.evaluated"
    RUN_EXTERNAL_LOGGED = "run.external_logged"
    # deployments: registry
    MODEL_REGISTERED = "model.registered"
    MODEL_RETRAIN_REGISTERED = "model.retrain_register"
    # deployments: rollout
    DEPLOYMENT_CREATED = "deployment.created"
    DEPLOYMENT_PROMOTED = "deployment.promoted"
    DEPLOYMENT_UPDATED = "deployment.updated"
    DEPLOYMENT_ROLLED_BACK = "deployment.rolled_back"
    DEPLOYMENT_PAUSED = "deployment.paused"
    DEPLOYMENT_RESUMED = "deployment.resumed"
    DEPLOYMENT_SHADOW_SET = "deployment.shadow_set"
    DEPLOYMENT_THRESHOLD_SET = "deployment.threshold_set"
    DEPLOYMENT_RETIRED = "deployment.retired"
    GATE_OVERRIDDEN = "gate.overridden"
    # deployments: serving and batch
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    DEPLOYMENT_BATCH_STARTED = "deployment.batch_started"
    # deployments: reviews
    REVIEW_APPROVED = "review.approved"
    REVIEW_OVERRIDDEN = "review.overridden"
    REVIEW_ESCALATED = "review.escalated"
    DEPLOYMENT_REVIEW_POLICY_UPDATED = "deployment.review_policy_updated"
    # deployments: monitoring
    DEPLOYMENT_FEEDBACK = "deployment.feedback"
    DEPLOYMENT_MONITORING_UPDATED = "deployment.monitoring_update"
    DEPLOYMENT_RETRAIN = "deployment.retrain"
    ALERT_ACKNOWLEDGED = "alert.acknowledge"


def audit_action(value: str) -> AuditAction:
    """The member for `value`; ValueError naming it when the platform declares no such event."""
    try:
        return AuditAction(value)
    except ValueError:
        raise ValueError(f"Unknown audit event type {value!r}: declare it in projects.events.AuditAction.") from None
