"""Reads: leaderboards sorted by any metric, comparisons."""

from __future__ import annotations

from typing import Any

from experiments.ml.metrics import metric_names
from experiments.models import Experiment, Run, RunStatus
from projects.metrics import METRICS


def leaderboard(experiment: Experiment, *, sort: str | None = None) -> list[Run]:
    """Runs, best first by `sort` (any metric of the task type; default the experiment's metric).

    Finished runs are ranked; failed, queued and running runs follow.
    """
    metric = sort if sort in metric_names(experiment.task_type) else experiment.metric
    higher = METRICS[metric].higher_is_better
    runs = list(experiment.runs.all().order_by("trial_number", "pk"))

    def key(r: Run) -> tuple:
        value = ((r.cv_metrics or {}).get(metric) or {}).get("mean")
        if r.status != RunStatus.SUCCEEDED or value is None:
            return (1, 0.0, r.trial_number)
        return (0, -value if higher else value, r.trial_number)

    return sorted(runs, key=key)


def fit_verdict(run: Run, metric: str) -> str:
    """Overfitting / underfitting in plain words, from train vs validation scores."""
    cv = ((run.cv_metrics or {}).get(metric) or {}).get("mean")
    tr = (run.train_metrics or {}).get(metric)
    if cv is None or tr is None:
        return ""
    higher = METRICS[metric].higher_is_better
    gap = (tr - cv) if higher else (cv - tr)
    scale = max(abs(tr), abs(cv), 1e-9)
    if gap / scale > 0.1:
        return "overfitting"
    if metric in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "r2", "precision", "recall") and tr < 0.6:
        return "underfitting"
    return "good fit"


def compare(runs: list[Run]) -> dict[str, Any]:
    params = sorted({k for r in runs for k in (r.params or {})})
    metrics = sorted({k for r in runs for k in (r.cv_metrics or {})})
    return {"params": params, "metrics": metrics}
