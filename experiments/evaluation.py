"""The work behind diagnostics and the one final evaluation (run by jobs, or inline by a retrain):
diagnostics on validation data only; the locked test set read once, with bootstrap intervals and
a verdict against the project's baseline and success threshold."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets.models import DatasetVersion
from experiments.coordinator import build_model, training_data
from experiments.events import experiment_evaluated_event
from experiments.ml import training
from experiments.ml.calibration import calibration_assess
from experiments.ml.diagnostics import diagnostics
from experiments.ml.metrics import bootstrap_ci
from experiments.models import Experiment, Run
from mlplatform.errors import InvalidInput
from projects.metrics import METRICS, beats
from projects.models import Project


def diagnose_execute(*, run_id: int, ctx: Any = None) -> dict[str, Any]:
    """Fit the run on the training split, chart it on the validation split (never the test set)."""
    from datasets.selectors import split_frames
    from mlplatform.artifacts import model_save

    run = Run.objects.select_related("experiment", "experiment__dataset_version").get(pk=run_id)
    experiment = run.experiment
    progress = (lambda pct, msg: ctx.progress(pct, msg)) if ctx else None
    frames = split_frames(experiment.dataset_version)
    data = training_data(experiment, frames.train)
    val = frames.val[frames.val[experiment.target].notna()].reset_index(drop=True)
    if len(val) < 5:
        raise InvalidInput("The validation split has too few rows for diagnostics.", field="dataset_version")
    X_tr, y_tr = data.plan.row_filter(data.X, data.y)
    model = build_model(experiment, run, data.plan)
    if progress:
        progress(10, "Fitting on the training split")
    model.fit(X_tr, y_tr)
    classes = [training.json_label(c) for c in np.unique(data.y)] if experiment.task_type == "classification" else None
    result = diagnostics(
        model,
        X_tr,
        y_tr,
        val[data.plan.feature_columns],
        val[experiment.target],
        task_type=experiment.task_type,
        primary_metric=experiment.metric,
        classes=list(np.unique(data.y)) if classes else None,
        positive=experiment.positive_class,
        # Grouped folds need the groups of the filtered rows; plain folds are close enough for
        # the shape of a learning curve.
        learning_curve_cv=training.make_cv(
            "kfold" if experiment.cv_strategy == "group" else experiment.cv_strategy,
            min(3, experiment.cv_folds),
            y_tr,
            None,
            experiment.task_type,
        ),
        progress=progress,
    )
    result["computed_at"] = timezone.now().isoformat()
    stored = model_save(model, prefix=f"projects/{run.project_id}/models")
    Run.objects.filter(pk=run.pk).update(diagnostics=result, artifact_key=stored.key, artifact_sha256=stored.sha256)
    return {"run": run.pk}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def verdict_for(project: Project, metric: str, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Compare the test result with the project's baseline and success threshold."""
    bar_metric = project.success_metric if project.success_metric in metrics else metric
    entry = metrics.get(bar_metric) or {}
    value = entry.get("value")
    label = METRICS[bar_metric].label
    beats_baseline = (
        None if project.baseline_score is None or value is None else beats(bar_metric, value, project.baseline_score)
    )
    meets = (
        None
        if project.success_threshold is None or value is None
        else beats(bar_metric, value, project.success_threshold)
    )
    parts = []
    if beats_baseline is not None:
        parts.append(f"{'beats' if beats_baseline else 'does not beat'} the baseline {_fmt(project.baseline_score)}")
    if meets is not None:
        parts.append(
            f"{'clears' if meets else 'falls short of'} the success threshold {_fmt(project.success_threshold)}"
        )
    ci = ""
    if entry.get("ci_low") is not None:
        ci = f", 95% CI {_fmt(entry['ci_low'])} to {_fmt(entry['ci_high'])}"
        # The pessimistic end: the low end of a score (F1), the high end of an error (RMSE).
        higher = METRICS[bar_metric].higher_is_better
        pessimistic = entry["ci_low"] if higher else entry["ci_high"]
        if meets and pessimistic is not None and not beats(bar_metric, pessimistic, project.success_threshold):
            side = "below" if higher else "above"
            ci += f" (the interval reaches {side} the threshold: the margin is not certain)"
    head = " and ".join(parts) if parts else "no baseline or threshold to compare with"
    text = f"{head[0].upper()}{head[1:]}: {label} {_fmt(value)}{ci}."
    return {"metric": bar_metric, "beats_baseline": beats_baseline, "meets_threshold": meets, "text": text}


def _final_model(experiment: Experiment, run: Run, data: Any) -> tuple[Any, Any, int | None]:
    """The model the test set judges, its file and how many rows it was fitted on here: a platform
    run refit on train + validation; an external run as uploaded (the platform cannot refit it),
    loaded from its recorded file with the hash check."""
    from mlplatform.artifacts import StoredArtifact, model_load, model_save

    if run.kind == "external":
        model = model_load(run.artifact_key, run.artifact_sha256)
        return model, StoredArtifact(run.artifact_key, run.artifact_sha256, run.model_size_bytes or 0), None
    X_fit, y_fit = data.plan.row_filter(data.X, data.y)
    model = build_model(experiment, run, data.plan)
    model.fit(X_fit, y_fit)
    return model, model_save(model, prefix=f"projects/{experiment.project_id}/models"), len(y_fit)


def evaluate_execute(*, experiment_id: int, ctx: Any = None) -> dict[str, Any]:
    """Refit on train + validation, predict the locked test rows once, bootstrap the metrics."""
    from datasets.selectors import locked_test_frame, split_frames

    experiment = Experiment.objects.select_related("project", "dataset_version", "evaluated_run").get(pk=experiment_id)
    run = experiment.evaluated_run
    if run is None:
        raise InvalidInput("No run was chosen for the final evaluation.", field="run")
    if experiment.test_evaluation:
        return {"already": True}
    if ctx:
        ctx.progress(5, "Loading the uploaded model" if run.kind == "external" else "Refitting on train + validation")
    frames = split_frames(experiment.dataset_version)
    full = pd.concat([frames.train, frames.val], ignore_index=True)
    data = training_data(experiment, full)
    model, stored, n_fit = _final_model(experiment, run, data)
    if ctx:
        ctx.progress(60, "Evaluating once on the locked test set")
    DatasetVersion.objects.filter(pk=experiment.dataset_version_id, test_used_at__isnull=True).update(
        test_used_at=timezone.now()
    )
    test = locked_test_frame(experiment.dataset_version, purpose="final_evaluation")
    test = test[test[experiment.target].notna()].reset_index(drop=True)
    if test.empty:
        raise InvalidInput("The locked test set has no rows with a target.", field="dataset_version")
    X_test, y_test = test[data.plan.feature_columns], test[experiment.target].to_numpy()
    classes = np.unique(data.y) if experiment.task_type == "classification" else None
    t0 = time.perf_counter()
    pred, proba = training.predict_all(model, X_test, experiment.task_type)
    predict_seconds = time.perf_counter() - t0
    proba = training.align_proba(model, proba, classes)
    metrics = bootstrap_ci(
        experiment.task_type,
        y_test,
        pred,
        proba,
        classes,
        n_boot=settings.EXPERIMENT_BOOTSTRAP_SAMPLES,
        positive=experiment.positive_class,
    )
    calibration = None
    if proba is not None and classes is not None:
        # Read once with the test set: whether the probabilities can be trusted as probabilities
        # (monitoring's performance estimate before labels states this verdict).
        index = {c: i for i, c in enumerate(classes.tolist())}
        y_idx = np.array([index.get(v, -1) for v in y_test.tolist()])
        keep = y_idx >= 0
        calibration = calibration_assess(proba[keep], y_idx[keep], source="locked test set")
    evaluation = {
        "metric": experiment.metric,
        "calibration": calibration,
        "run": run.pk,
        "metrics": metrics,
        "feature_columns": list(data.plan.feature_columns),
        "classes": [] if classes is None else [training.json_label(c) for c in model.classes_],
        "positive_class": experiment.positive_class,
        "n_test": len(y_test),
        "n_fit": n_fit,
        "external": run.kind == "external",
        "predict_seconds": predict_seconds,
        "verdict": verdict_for(experiment.project, experiment.metric, metrics),
        "cv_score": run.score,
        "evaluated_at": timezone.now().isoformat(),
    }
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(final_artifact_key=stored.key, final_artifact_sha256=stored.sha256)
        Experiment.objects.filter(pk=experiment.pk).update(test_evaluation=evaluation)
        experiment_evaluated_event(
            actor=experiment.evaluated_by, experiment=experiment, run_id=run.pk, verdict=evaluation["verdict"]["text"]
        )
    return {"verdict": evaluation["verdict"]["text"]}
