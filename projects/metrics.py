"""The catalogue of success metrics per task type, shared by projects, experiments and the gate."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class TaskType(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    task_type: str
    higher_is_better: bool
    bounded_01: bool  # a score in [0, 1]: a threshold above 1 is a typo


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("accuracy", "Accuracy", TaskType.CLASSIFICATION, True, True),
        MetricInfo("balanced_accuracy", "Balanced accuracy", TaskType.CLASSIFICATION, True, True),
        MetricInfo("precision", "Precision", TaskType.CLASSIFICATION, True, True),
        MetricInfo("recall", "Recall", TaskType.CLASSIFICATION, True, True),
        MetricInfo("f1", "F1", TaskType.CLASSIFICATION, True, True),
        MetricInfo("roc_auc", "ROC AUC", TaskType.CLASSIFICATION, True, True),
        MetricInfo("pr_auc", "PR AUC (average precision)", TaskType.CLASSIFICATION, True, True),
        MetricInfo("log_loss", "Log loss", TaskType.CLASSIFICATION, False, False),
        MetricInfo("rmse", "RMSE", TaskType.REGRESSION, False, False),
        MetricInfo("mae", "MAE", TaskType.REGRESSION, False, False),
        MetricInfo("r2", "R²", TaskType.REGRESSION, True, False),
        MetricInfo("mape", "MAPE", TaskType.REGRESSION, False, False),
    ]
}

DEFAULT_METRIC = {TaskType.CLASSIFICATION: "f1", TaskType.REGRESSION: "rmse"}


def metrics_for(task_type: str) -> list[str]:
    return [m.name for m in METRICS.values() if m.task_type == task_type]


def beats(metric: str, score: float, bar: float) -> bool:
    """True when `score` is at least as good as `bar` for this metric's direction."""
    return score >= bar if METRICS[metric].higher_is_better else score <= bar
