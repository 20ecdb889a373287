"""The model registry's rows: one registered model version per row."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ReferenceStatus(models.TextChoices):
    """Whether a version's input schema and drift reference are built (a job builds them)."""

    PENDING = "pending", "Being prepared"
    READY = "ready", "Ready"
    FAILED = "failed", "Preparation failed"


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
    # `model_version_create` makes every version PENDING and queues the job that builds its schema
    # and reference; a version is deployable once READY. (Rows made before: READY, they had both.)
    reference_status = models.CharField(max_length=10, choices=ReferenceStatus.choices, default=ReferenceStatus.READY)
    reference_error = models.TextField(blank=True)
    # Binary classification: the class precision, recall, F1 and ROC AUC are about (training's
    # choice, from the experiment); monitoring computes the live metrics with the same one.
    positive_class = models.JSONField(null=True, blank=True)
    model_card = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the artefact retention deleted the version's files (model, drift reference): the row,
    # its metrics, lineage and model card stay; it can no longer serve or be downloaded.
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="modelversion_unique_per_project"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'model'} v{self.version}"
