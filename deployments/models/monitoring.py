"""Monitoring's rows: precomputed snapshots of a deployment and the alerts they fire."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class MonitoringSnapshot(models.Model):
    """Precomputed monitoring numbers for one deployment and time window."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="snapshots")
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


class AlertQuerySet(models.QuerySet):
    def firing(self) -> AlertQuerySet:
        return self.filter(state=AlertState.FIRING)

    def resolve(self) -> int:
        """Resolve these alerts now (a retired deployment, an SLA met again); returns how many."""
        now = timezone.now()
        return self.firing().update(state=AlertState.RESOLVED, resolved_at=now, last_seen_at=now)


class Alert(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="alerts")
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

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-first_fired_at"]
        constraints = [
            # One firing alert per key per deployment: deduplication in the database.
            models.UniqueConstraint(
                fields=["deployment", "key"], condition=Q(state="firing"), name="alert_one_firing_per_key"
            ),
        ]
