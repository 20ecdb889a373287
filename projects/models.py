from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.metrics import TaskType
from projects.roles import Role


class Decision(models.TextChoices):
    PENDING = "pending", "Pending"
    GO = "go", "Go"
    NO_GO = "no_go", "No go"


class GateStrictness(models.TextChoices):
    POINT = "point", "Point estimate must clear the bar"
    LOWER_BOUND = "lower_bound", "Lower bound of the 95% interval must clear the bar"


class AssumptionStatus(models.TextChoices):
    UNCHECKED = "unchecked", "Not checked yet"
    HOLDS = "holds", "Holds"
    VIOLATED = "violated", "Violated"


class Project(models.Model):
    """A machine-learning project and its problem statement (the seeds' step 1)."""

    name = models.CharField(max_length=120)
    task_type = models.CharField(max_length=20, choices=TaskType.choices)
    objective = models.TextField(blank=True, help_text="The business objective, in plain English.")
    usage = models.TextField(blank=True, help_text="How the model will be used.")
    current_solution = models.TextField(blank=True, help_text="What is done today; gives the baseline.")
    success_metric = models.CharField(max_length=30, blank=True)
    success_threshold = models.FloatField(null=True, blank=True)
    baseline_score = models.FloatField(null=True, blank=True, help_text="The current solution's score to beat.")
    # [{"text": str, "status": AssumptionStatus, "note": str}]
    assumptions = models.JSONField(default=list, blank=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING)
    decision_rationale = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    gate_strictness = models.CharField(max_length=20, choices=GateStrictness.choices, default=GateStrictness.POINT)
    # Binary classification only, optional: {"unit", "false_positive", "false_negative", "review"?,
    # "true_positive"?, "true_negative"?} (experiments.ml.costs.cost_matrix_parse validates it).
    cost_matrix = models.JSONField(null=True, blank=True)
    webhook_url = models.URLField(blank=True, help_text="Registry and deployment events are POSTed here.")
    # Signs every delivery (HMAC-SHA256). Shown once to an owner, then only rotated.
    webhook_secret = models.CharField(max_length=80, blank=True)
    webhook_secret_created_at = models.DateTimeField(null=True, blank=True)
    webhook_secret_shown_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="created_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(task_type__in=TaskType.values), name="project_task_type_valid"),
            models.CheckConstraint(
                condition=Q(success_threshold__isnull=True) | Q(success_threshold__gte=0),
                name="project_threshold_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def project(self) -> Project:
        # Lets the access helper treat a project like any project-owned object.
        return self


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class AuditEvent(models.Model):
    """Who did what, when, to which object. Written by services, never edited."""

    project = models.ForeignKey(Project, null=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=150, blank=True)  # survives user deletion; API keys too
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type}:{self.object_id}"
