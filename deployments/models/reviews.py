"""The review queue's rows: predictions routed to a human, and their decisions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ReviewMode(models.TextChoices):
    HOLD = "hold", "Hold: the prediction waits for a reviewer"
    FLAG = "flag", "Flag: returned now, reviewed after the fact"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    OVERRIDDEN = "overridden", "Overridden"
    ESCALATED = "escalated", "Escalated to an owner"
    CLOSED = "closed", "Closed: the deployment was retired"


class ReviewItem(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="review_items")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="review_items")
    prediction = models.OneToOneField("deployments.Prediction", on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    reason = models.CharField(max_length=20)  # class_rule, low_confidence, out_of_distribution, sample
    # Why the row's inputs are unlike the training data, when they are (whatever the reason):
    # {"score", "cutoff", "rate", "features": [{"feature", "value", "kind", "text", "excess"}]}.
    novelty = models.JSONField(null=True, blank=True)
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
