"""Model registry, deployments, prediction logs, review queue, monitoring snapshots and alerts."""

from __future__ import annotations

import os
import time
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 v7): prediction ids are made in-process, index-friendly."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | (0x7 << 76)
        | ((rand >> 62) & 0xFFF) << 64
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


class ModelVersion(models.Model):
    """A registered model: the whole fitted pipeline (preprocessing included), stored with skops."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    run = models.ForeignKey("experiments.Run", null=True, on_delete=models.SET_NULL, related_name="model_versions")
    experiment = models.ForeignKey("experiments.Experiment", null=True, on_delete=models.SET_NULL, related_name="+")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=120, blank=True)
    task_type = models.CharField(max_length=20)
    target = models.CharField(max_length=200)
    classes = models.JSONField(default=list, blank=True)  # classification labels, in predict_proba order
    artifact_key = models.CharField(max_length=300)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    # [{"name", "type": numeric|categorical|boolean|datetime|text, "categories"?, "min"?, "max"?, "nullable"}]
    input_schema = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)  # {"cv": {...}, "test": {metric: {value, ci_low, ci_high}}}
    lineage = models.JSONField(default=dict, blank=True)  # experiment, run, dataset version, recipe, who, when
    # Drift reference computed once at registration: per feature bin edges / category shares, sorted sample.
    reference_stats = models.JSONField(default=dict, blank=True)
    reference_key = models.CharField(max_length=300, blank=True)
    model_card = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="modelversion_unique_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'model'} v{self.version}"


class DeploymentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class ReviewMode(models.TextChoices):
    HOLD = "hold", "Hold: the prediction waits for a reviewer"
    FLAG = "flag", "Flag: returned now, reviewed after the fact"


class Deployment(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=120)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    shadow_model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="shadow_deployments"
    )
    status = models.CharField(max_length=10, choices=DeploymentStatus.choices, default=DeploymentStatus.ACTIVE)
    # Input validation policy
    unknown_category_policy = models.CharField(max_length=10, default="error")  # error | allow
    allow_missing = models.BooleanField(default=True)
    max_instances = models.PositiveIntegerField(null=True, blank=True)  # None: settings.PREDICT_MAX_INSTANCES
    # Review policy (human in the loop)
    review_threshold = models.FloatField(null=True, blank=True)  # confidence below this goes to review
    review_mode = models.CharField(max_length=5, choices=ReviewMode.choices, default=ReviewMode.FLAG)
    review_policy = models.JSONField(default=dict, blank=True)  # {"class_thresholds", "always_review", "sample_rate"}
    review_sla_minutes = models.PositiveIntegerField(default=240)
    review_webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=80, blank=True)
    # Monitoring
    monitoring = models.JSONField(default=dict, blank=True)  # {"psi_warn", "psi_alert", "interval_minutes", ...}
    auto_retrain = models.BooleanField(default=False)
    last_snapshot_at = models.DateTimeField(null=True, blank=True)
    # Promotion gate override, shown on the deployment
    gate_override = models.JSONField(null=True, blank=True)  # {"by", "at", "justification", "gate"}
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="deployment_unique_name_per_project"),
            models.CheckConstraint(
                condition=Q(review_threshold__isnull=True) | Q(review_threshold__gte=0, review_threshold__lte=1),
                name="deployment_review_threshold_in_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DeploymentChange(models.Model):
    """History of a deployment's active version: who, when, why. Rollback walks it back."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=20)  # deploy, promote, rollback, pause, resume, shadow
    from_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    gate = models.JSONField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class ApiKey(models.Model):
    """A deployment API key: scoped to one deployment, shown once, stored as a SHA-256."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    rate_per_minute = models.PositiveIntegerField(default=6000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class PredictionStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    PENDING_REVIEW = "pending_review", "Pending review"
    REVIEWED = "reviewed", "Reviewed"


class Prediction(models.Model):
    """Every prediction served, with its inputs, outputs and (later) its ground truth."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    source = models.CharField(max_length=10, default="api")  # api, batch, shadow, simulator
    inputs = models.JSONField()
    prediction = models.JSONField()
    confidence = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    interval = models.JSONField(null=True, blank=True)  # regression: [low, high]
    status = models.CharField(max_length=15, choices=PredictionStatus.choices, default=PredictionStatus.ACCEPTED)
    final_prediction = models.JSONField(null=True, blank=True)  # after review
    latency_ms = models.FloatField(null=True, blank=True)
    caller = models.CharField(max_length=120, blank=True)  # "user:12" or "key:34"
    actual = models.JSONField(null=True, blank=True)  # ground truth
    actual_source = models.CharField(max_length=10, blank=True)  # feedback, review
    actual_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["deployment", "created_at"]),
            models.Index(fields=["deployment", "actual_at"]),
        ]


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    OVERRIDDEN = "overridden", "Overridden"
    ESCALATED = "escalated", "Escalated to an owner"


class ReviewItem(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="review_items")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="review_items")
    prediction = models.OneToOneField(Prediction, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    reason = models.CharField(max_length=20)  # low_confidence, class_rule, sample
    mode = models.CharField(max_length=5, choices=ReviewMode.choices)
    confidence = models.FloatField(null=True, blank=True)
    model_label = models.JSONField(null=True)
    final_label = models.JSONField(null=True, blank=True)
    sample_weight = models.FloatField(default=1.0)  # 1 / sampling rate for the random QC sample
    comment = models.TextField(blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["deployment", "status", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="pending") | Q(status="escalated") | Q(decided_at__isnull=False),
                name="review_decided_has_time",
            ),
        ]


class MonitoringSnapshot(models.Model):
    """Precomputed monitoring numbers for one deployment and time window."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="snapshots")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    computed_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict)  # traffic, latency, quality, drift, performance, review

    class Meta:
        ordering = ["-window_end"]
        indexes = [models.Index(fields=["deployment", "-window_end"])]


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="alerts")
    key = models.CharField(max_length=120)  # dedupe key: "drift:income", "performance:f1", "review_sla"
    kind = models.CharField(max_length=30)
    severity = models.CharField(max_length=10, default="warning")  # warning, critical
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.FIRING)
    message = models.TextField()
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    first_fired_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_fired_at"]
        constraints = [
            # One firing alert per key per deployment: deduplication in the database.
            models.UniqueConstraint(
                fields=["deployment", "key"], condition=Q(state="firing"), name="alert_one_firing_per_key"
            ),
        ]


class PredictionErrorCount(models.Model):
    """Refused or failed predict calls per deployment, minute and kind (validation, server, ...).

    Monitoring reads "error rate by kind" from here: a refused request writes no Prediction row,
    so its count lives in this small table, one upserted row per minute and kind.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="error_counts")
    minute = models.DateTimeField()
    kind = models.CharField(max_length=20)  # validation, server, auth, rate_limited, paused
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "minute", "kind"], name="prediction_error_count_unique"),
        ]
