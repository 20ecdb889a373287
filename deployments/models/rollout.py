"""Deployments (a model version served under a name) and the history of their active version."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from deployments.models.registry import ModelVersion
from deployments.models.reviews import ReviewMode


class DeploymentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    # For good: predict answers 410, nothing restarts it; its log, reviews and history stay readable.
    RETIRED = "retired", "Retired"


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
    # Monitoring
    monitoring = models.JSONField(default=dict, blank=True)  # {"psi_warn", "psi_alert", "interval_minutes", ...}
    auto_retrain = models.BooleanField(default=False)
    last_snapshot_at = models.DateTimeField(null=True, blank=True)
    # Days logged predictions (rows and columnar segments) are kept; None: settings.PREDICTION_RETENTION_DAYS.
    prediction_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # Binary classifiers: the positive class is decided when its probability reaches this threshold
    # (None: the most probable class, i.e. 0.5). It was tuned for one version's probabilities, so it
    # applies only while that version is active; a promoted or rolled-back version gets argmax.
    decision_threshold = models.FloatField(null=True, blank=True)
    decision_threshold_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)
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
            models.CheckConstraint(
                condition=Q(decision_threshold__isnull=True) | Q(decision_threshold__gt=0, decision_threshold__lt=1),
                name="deployment_decision_threshold_in_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def active_threshold(self) -> float | None:
        """The decision threshold serving applies now: set, and set for the active version."""
        if self.decision_threshold is not None and self.decision_threshold_version_id == self.model_version_id:
            return self.decision_threshold
        return None


class DeploymentChange(models.Model):
    """History of a deployment's active version: who, when, why. Rollback walks it back."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=20)  # deploy, promote, rollback, pause, resume, shadow, threshold, retire
    from_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    gate = models.JSONField(null=True, blank=True)
    details = models.JSONField(null=True, blank=True)  # threshold: {"from", "to", "version"}
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
