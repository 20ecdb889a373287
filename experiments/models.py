"""Experiments (one training configuration on one dataset version) and their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ExperimentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Experiment(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=120)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="experiments")
    target = models.CharField(max_length=200)
    task_type = models.CharField(max_length=20)
    metric = models.CharField(max_length=30)
    # Binary classification: the class precision, recall, F1 and ROC AUC are about (chosen at
    # creation, else the second of the two sorted classes); copied to the registered model version.
    positive_class = models.JSONField(null=True, blank=True)
    recipe = models.ForeignKey("datasets.Recipe", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    recipe_steps = models.JSONField(default=list, blank=True)  # the snapshot actually used
    cv_folds = models.PositiveSmallIntegerField(default=5)
    cv_strategy = models.CharField(max_length=20, default="auto")  # kfold, stratified, group, time
    algorithms = models.JSONField(default=list, blank=True)
    search = models.JSONField(default=dict, blank=True)  # {"method", "n_trials", "timeout_seconds", "spaces"}
    status = models.CharField(max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    evaluation_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retrains",
        help_text="The experiment whose configuration a retrain reused.",
    )
    # The one final evaluation on the locked test set.
    evaluated_run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    test_evaluation = models.JSONField(null=True, blank=True)  # {metric: {value, ci_low, ci_high}, verdict...}
    evaluated_at = models.DateTimeField(null=True, blank=True)
    evaluated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="experiment_progress_at_most_100"),
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    """One candidate: an algorithm with parameters, cross-validated (a trial of a search)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="runs")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    algorithm = models.CharField(max_length=60)
    params = models.JSONField(default=dict, blank=True)
    trial_number = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=12, default="candidate")  # baseline, candidate, ensemble, external
    members = models.JSONField(default=list, blank=True)  # ensemble: run ids
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    cv_metrics = models.JSONField(default=dict, blank=True)  # {metric: {"mean", "std"}}
    train_metrics = models.JSONField(default=dict, blank=True)  # {metric: value} on the training folds
    score = models.FloatField(null=True, blank=True)  # CV mean of the experiment's metric
    fit_seconds = models.FloatField(null=True, blank=True)
    predict_seconds = models.FloatField(null=True, blank=True)
    model_size_bytes = models.BigIntegerField(null=True, blank=True)
    # Fitted on the training split (for diagnostics on validation data).
    artifact_key = models.CharField(max_length=300, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    diagnostics = models.JSONField(default=dict, blank=True)
    diagnostics_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Refit on train + validation by the final evaluation: what gets registered.
    final_artifact_key = models.CharField(max_length=300, blank=True)
    final_artifact_sha256 = models.CharField(max_length=64, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # An external run (kind "external", trained by a client and uploaded): its name, the uploaded
    # file's name, who logged it, and the platform's own scores on the validation rows.
    external = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", "-score", "id"]
        indexes = [models.Index(fields=["experiment", "status"])]

    def __str__(self) -> str:
        return f"{self.algorithm} #{self.pk}"
