"""Model registry: registering an evaluated run as a model version, and the promotion gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from deployments import monitoring_reference, serving
from deployments.models import ModelVersion
from mlplatform.artifacts import model_load
from mlplatform.errors import Conflict, InvalidInput
from projects.metrics import METRICS, beats
from projects.models import Decision, GateStrictness, Project
from projects.services import audit_record
from projects.webhooks import project_event

REFERENCE_MAX_ROWS = 200_000


def model_for(version: ModelVersion) -> Any:
    """The loaded pipeline of a version: cached per process, hash-checked before the skops load."""
    return serving.model_cached(version.pk, version.sha256, lambda: model_load(version.artifact_key, version.sha256))


def _model_card(*, project: Project, experiment, run, dv, schema, metrics, test: dict, n_rows: int) -> dict:
    metric = test.get("metric") or project.success_metric
    main = (test.get("metrics") or {}).get(metric) or {}
    numeric = [f for f in schema if f["type"] == "numeric" and "min" in f]
    limitations = [
        "Trained on "
        f"{n_rows} rows of dataset “{dv.dataset.name}” version {dv.number}; inputs unlike them (new categories, "
        "values outside the training ranges) give less reliable predictions.",
    ]
    if numeric:
        f = numeric[0]
        limitations.append(f"Example range seen in training: {f['name']} from {f['min']} to {f['max']}.")
    if main.get("ci_low") is not None:
        limitations.append(
            f"The test {metric} of {main.get('value'):.4g} has a 95% interval of "
            f"[{main.get('ci_low'):.4g}, {main.get('ci_high'):.4g}] over {test.get('n_test', '?')} test rows."
        )
    if test.get("verdict"):
        limitations.append(f"Final evaluation verdict: {test['verdict']}.")
    return {
        "problem": {
            "objective": project.objective,
            "usage": project.usage,
            "current_solution": project.current_solution,
            "success_metric": project.success_metric,
            "success_threshold": project.success_threshold,
            "baseline_score": project.baseline_score,
        },
        "data": {
            "dataset": dv.dataset.name,
            "dataset_version": dv.number,
            "target": experiment.target,
            "training_rows": n_rows,
            "features": [f["name"] for f in schema],
        },
        "model": {"algorithm": run.algorithm, "params": run.params},
        "metrics": metrics,
        "limitations": limitations,
    }


def model_version_register(*, run, actor) -> ModelVersion:
    """Register a run's final (train + validation) pipeline as the project's next model version.

    Only the run chosen by its experiment's final evaluation can be registered, once.
    Reads a bounded sample of the training rows to infer the input schema and the drift reference.
    """
    experiment = run.experiment
    if experiment.evaluated_run_id != run.pk or not experiment.test_evaluation:
        raise InvalidInput("Only the run chosen by the experiment's final evaluation can be registered.", field="run")
    if not run.final_artifact_key or not run.final_artifact_sha256:
        raise InvalidInput("This run has no final model file (refit on train + validation) yet.", field="run")
    existing = ModelVersion.objects.filter(run=run).first()
    if existing is not None:
        raise Conflict(f"This run is already registered as version {existing.version}.", field="run")
    test = experiment.test_evaluation
    features = list(test.get("feature_columns") or [])
    if not features:
        raise InvalidInput("The final evaluation does not list the feature columns.", field="run")
    dv = experiment.dataset_version

    from datasets.selectors import split_frames

    # Slow part outside any transaction: load the model (hash check first), read the training rows.
    model = model_load(run.final_artifact_key, run.final_artifact_sha256)
    frames = split_frames(dv)
    train = pd.concat([frames.train, frames.val], ignore_index=True)
    missing = [c for c in features if c not in train.columns]
    if missing:
        raise InvalidInput(f"Feature columns missing from the dataset version: {missing}.", field="run")
    X = train[features]
    schema = serving.schema_infer(X, features)
    if len(X) > REFERENCE_MAX_ROWS:
        X = X.sample(REFERENCE_MAX_ROWS, random_state=0).reset_index(drop=True)
    labels, conf, _ = serving.score_arrays(model, X, task_type=experiment.task_type)
    from datasets.storage import frame_save

    reference = frame_save(X, prefix=f"projects/{run.project_id}/references")
    stats = monitoring_reference.reference_stats_build(
        frame=X, input_schema=schema, predictions=np.asarray(labels), confidences=conf
    )
    try:
        size = default_storage.size(run.final_artifact_key)
    except (OSError, NotImplementedError):
        size = run.model_size_bytes or 0
    classes = (
        [serving._label(c) for c in getattr(model, "classes_", [])] if experiment.task_type == "classification" else []
    )
    metrics = {
        "metric": test.get("metric") or experiment.metric,
        "cv": run.cv_metrics,
        "test": test.get("metrics") or {},
        "n_test": test.get("n_test"),
        "verdict": test.get("verdict"),
    }
    project = run.project
    now = timezone.now()
    lineage = {
        "experiment": {"id": experiment.pk, "name": experiment.name},
        "run": {"id": run.pk, "algorithm": run.algorithm, "params": run.params},
        "dataset": {"id": dv.dataset_id, "name": dv.dataset.name},
        "dataset_version": {"id": dv.pk, "number": dv.number, "content_hash": getattr(dv, "content_hash", "")},
        "recipe": experiment.recipe_steps,
        "evaluated_by": getattr(experiment.evaluated_by, "username", None),
        "evaluated_at": experiment.evaluated_at.isoformat() if experiment.evaluated_at else None,
        "registered_by": actor.get_username() if actor else None,
        "registered_at": now.isoformat(),
    }
    card = _model_card(
        project=project,
        experiment=experiment,
        run=run,
        dv=dv,
        schema=schema,
        metrics=metrics,
        test=test,
        n_rows=len(train),
    )
    with transaction.atomic():
        # The project row lock serialises version numbering (two registrations at once).
        Project.objects.select_for_update().get(pk=project.pk)
        if ModelVersion.objects.filter(run=run).exists():
            raise Conflict("This run was registered meanwhile.", field="run")
        number = (ModelVersion.objects.filter(project=project).aggregate(m=Max("version"))["m"] or 0) + 1
        version = ModelVersion.objects.create(
            project=project,
            version=number,
            run=run,
            experiment=experiment,
            dataset_version=dv,
            name=f"{experiment.target} · {run.algorithm}",
            task_type=experiment.task_type,
            target=experiment.target,
            classes=classes,
            artifact_key=run.final_artifact_key,
            sha256=run.final_artifact_sha256,
            size_bytes=size,
            input_schema=schema,
            metrics=metrics,
            lineage=lineage,
            reference_stats=stats or {},
            reference_key=reference.key,
            model_card=card,
            created_by=actor,
        )
        audit_record(actor=actor, action="model.registered", project=project, obj=version, data={"run": run.pk})
        project_event(
            project=project,
            event="model.registered",
            payload={"model_version": {"id": version.pk, "version": number, "metrics": metrics, "run": run.pk}},
        )
    return version


# --- promotion gate ----------------------------------------------------------------------------


@dataclass
class GateResult:
    passed: bool
    metric: str
    strictness: str
    score: float | None
    baseline: float | None
    threshold: float | None
    decision: str
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_check(model_version: ModelVersion, project: Project) -> GateResult:
    """Can this version be deployed? Its final test score must beat the baseline and meet the bar.

    With strictness `lower_bound`, the pessimistic end of the 95% interval is compared (the low
    end for a higher-is-better metric, the high end for an error metric such as RMSE).
    """
    metric = project.success_metric or (model_version.metrics or {}).get("metric") or ""
    reasons: list[str] = []
    entry = ((model_version.metrics or {}).get("test") or {}).get(metric)
    score: float | None = None
    if metric not in METRICS:
        reasons.append("The project has no success metric.")
    elif not isinstance(entry, dict) or entry.get("value") is None:
        reasons.append(f"The version has no final test evaluation of {metric}.")
    else:
        if project.gate_strictness == GateStrictness.LOWER_BOUND:
            end = "ci_low" if METRICS[metric].higher_is_better else "ci_high"
            score = entry.get(end)
            if score is None:
                reasons.append(f"The final evaluation has no 95% interval for {metric}.")
        else:
            score = entry["value"]
    if score is not None:
        what = (
            "the 95% interval's pessimistic end"
            if project.gate_strictness == GateStrictness.LOWER_BOUND
            else "the test score"
        )
        if project.baseline_score is None:
            reasons.append("The project has no baseline score to beat.")
        elif not beats(metric, score, project.baseline_score) or score == project.baseline_score:
            reasons.append(f"{metric}: {what} {score:.4g} does not beat the baseline {project.baseline_score:.4g}.")
        if project.success_threshold is None:
            reasons.append("The project has no success threshold.")
        elif not beats(metric, score, project.success_threshold):
            reasons.append(
                f"{metric}: {what} {score:.4g} does not meet the success threshold {project.success_threshold:.4g}."
            )
    if project.decision != Decision.GO:
        reasons.append(f"The project's go / no-go decision is “{project.get_decision_display()}”, not go.")
    return GateResult(
        passed=not reasons,
        metric=metric,
        strictness=project.gate_strictness,
        score=score,
        baseline=project.baseline_score,
        threshold=project.success_threshold,
        decision=project.decision,
        reasons=reasons,
    )
