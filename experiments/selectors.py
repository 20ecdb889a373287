"""Reads: leaderboards sorted by any metric, the best candidate, comparisons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments.ml import costs
from experiments.ml.metrics import metric_names
from experiments.models import Experiment, Run, RunStatus
from mlplatform.templatefilters import format_number
from projects.metrics import METRICS

BASELINE = "baseline"
EXTERNAL = "external"  # experiments.external.EXTERNAL: trained and scored by a client


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


def ranking_metric(experiment: Experiment) -> str:
    """What candidates are ranked by: the project's success metric when the runs measured it
    (the score the model must reach), else the metric the experiment optimised."""
    success = experiment.project.success_metric
    return success if success in metric_names(experiment.task_type) else experiment.metric


def cv_score(run: Run, metric: str) -> float | None:
    return ((run.cv_metrics or {}).get(metric) or {}).get("mean")


@dataclass
class Ranking:
    """A leaderboard as people read it: baselines pinned as references, candidates ranked."""

    metric: str  # what the candidates are ranked by
    higher_is_better: bool
    baselines: list[Run] = field(default_factory=list)
    candidates: list[Run] = field(default_factory=list)  # finished, best first
    others: list[Run] = field(default_factory=list)  # failed, queued, running candidates
    best: Run | None = None  # the best candidate by the ranking metric


def ranking(experiment: Experiment, *, sort: str | None = None) -> Ranking:
    """Baselines (dummy and linear) are reference rows to beat, not candidates: they never rank
    first and are never pre-selected. Candidates (searched runs and ensembles) are ranked by
    `sort` (default the ranking metric) in its direction; `best` is always by the ranking
    metric, whatever the display sort."""
    metric = ranking_metric(experiment)
    shown = sort if sort in metric_names(experiment.task_type) else metric
    ordered = leaderboard(experiment, sort=shown)
    result = Ranking(metric=shown, higher_is_better=METRICS[shown].higher_is_better)
    for r in ordered:
        if r.kind == BASELINE:
            result.baselines.append(r)
        elif r.status == RunStatus.SUCCEEDED and cv_score(r, shown) is not None:
            result.candidates.append(r)
        else:
            result.others.append(r)
    result.best = best_candidate(experiment, runs=ordered)
    return result


def best_candidate(experiment: Experiment, *, runs: list[Run] | None = None) -> Run | None:
    """The finished platform-trained run with the best cross-validated ranking metric.

    Baselines are references to beat; an external run's cross-validated score is its client's
    claim, not a measurement: both stay on the leaderboard but are never the default choice."""
    metric = ranking_metric(experiment)
    higher = METRICS[metric].higher_is_better
    scored = [
        r
        for r in (runs if runs is not None else experiment.runs.all())
        if r.kind not in (BASELINE, EXTERNAL) and r.status == RunStatus.SUCCEEDED and cv_score(r, metric) is not None
    ]
    if not scored:
        return None
    return sorted(scored, key=lambda r: ((-1 if higher else 1) * cv_score(r, metric), r.trial_number, r.pk))[0]


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


def evaluation_warnings(experiment: Experiment, run: Run) -> list[str]:
    """Why evaluating `run` on the locked test set may waste the one look: a baseline, or a run
    that overfits (the existing train-vs-validation fit label). The UI asks for an explicit
    confirmation when this is not empty."""
    warnings = []
    if run.kind == BASELINE:
        warnings.append(
            f"Run #{run.pk} ({run.algorithm}) is a baseline: a reference the candidates must beat, not a "
            "model to ship. Evaluating it spends the one look at the locked test set."
        )
    if run.kind == EXTERNAL:
        measured = ((run.external or {}).get("validation_metrics") or {}).get(experiment.metric)
        warnings.append(
            f"Run #{run.pk} ({run.algorithm}) was trained outside the platform: its cross-validated "
            f"{experiment.metric} is the uploader's claim (the platform measured "
            f"{format_number(measured, 3)} on the validation rows, which its trainer may have seen). "
            "Evaluating it spends the one look at the locked test set."
        )
    if fit_verdict(run, experiment.metric) == "overfitting":
        tr = (run.train_metrics or {}).get(experiment.metric)
        cv = cv_score(run, experiment.metric)
        warnings.append(
            f"Run #{run.pk} ({run.algorithm}) overfits: {experiment.metric} {format_number(tr, 3)} on training "
            f"folds but {format_number(cv, 3)} on validation folds, so its test score will likely disappoint. "
            "Regularise or tune it first, or choose another run."
        )
    return warnings


def compare(runs: list[Run]) -> dict[str, Any]:
    params = sorted({k for r in runs for k in (r.params or {})})
    metrics = sorted({k for r in runs for k in (r.cv_metrics or {})})
    return {"params": params, "metrics": metrics}


def run_cost_analysis(
    run: Run | None, cm: Any, *, current: tuple[float, float, float] | None = None, reviewer_accuracy: float = 1.0
) -> dict[str, Any]:
    """The cost analysis of a run's validation rows (its diagnostics' score histogram) under the
    cost matrix `cm` (experiments.ml.costs.CostMatrix), with its chart."""
    diagnostics = (run.diagnostics if run is not None else None) or {}
    hist = costs.hist_from_json(diagnostics.get("score_hist"))
    if hist is None:
        why = (
            "No validation scores for this run: compute (or recompute) its diagnostics."
            if run is not None
            else "No run behind this version."
        )
        return {"available": False, "why": why, "recompute": run is not None and bool(diagnostics)}
    analysis = costs.cost_analysis(hist, cm, current=current, reviewer_accuracy=reviewer_accuracy)
    return {
        "available": True,
        "why": "",
        "run": run.pk,
        "positive_class": diagnostics.get("positive_class"),
        "analysis": analysis,
        "chart": costs.chart(analysis),
    }


def run_costs(run: Run, *, reviewer_accuracy: float = 1.0) -> dict[str, Any]:
    """Decisions by cost on a run's validation rows under its project's cost matrix: the cost
    curve, the cost-optimal threshold and band next to the F1-optimal and default thresholds."""
    try:
        cm = costs.cost_matrix_parse(run.experiment.project.cost_matrix)
    except costs.CostMatrixError:
        cm = None
    if cm is None:
        return {"available": False, "why": "The project has no cost matrix (set one in its problem statement)."}
    if run.experiment.task_type != "classification":
        return {"available": False, "why": "Decisions by cost apply to a binary classifier."}
    return run_cost_analysis(run, cm, reviewer_accuracy=reviewer_accuracy)
