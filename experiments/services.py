"""Experiments, as users ask for them: creation (with the checks that keep a user out of
trouble), a follow-up tuning experiment, a retrain's challenger experiment, cancellation, and the
requests for diagnostics and for the one final evaluation.

The work these requests start lives beside: `coordinator` (queues and runs the trials: no job
ever waits for another) and `evaluation` (diagnostics on validation data, the one final
evaluation on the locked test set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from django.db import transaction
from django.utils import timezone

from datasets.models import DatasetVersion, Recipe, VersionStatus
from datasets.recipes import RecipeError, compile_recipe
from experiments.coordinator import EXPERIMENT_TERMINAL
from experiments.events import (
    evaluation_started_event,
    experiment_cancelled_event,
    experiment_created_event,
)
from experiments.ml import catalogue, search, training
from experiments.ml.metrics import default_positive
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from jobs.models import TERMINAL, Job, JobStatus
from jobs.runner import job_cancel, job_enqueue
from mlplatform.errors import Conflict, InvalidInput
from projects.metrics import DEFAULT_METRIC, METRICS, metrics_for
from projects.models import Project


@dataclass
class ExperimentConfig:
    dataset_version: DatasetVersion
    target: str
    name: str = ""
    metric: str = ""
    recipe: Recipe | None = None
    cv_folds: int = 5
    cv_strategy: str = "auto"
    algorithms: list[str] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    # Binary classification: the class precision, recall, F1 and ROC AUC are about; None: the
    # second of the two sorted classes.
    positive_class: Any = None


# --- creation ---------------------------------------------------------------------------------


def _check_target(version: DatasetVersion, target: str, task_type: str) -> pd.Series:
    from datasets.selectors import version_frame

    names = [c.get("name") for c in (version.schema or [])]
    if target not in names:
        raise InvalidInput(f"The column {target!r} is not in this dataset version.", field="target")
    y = version_frame(version, columns=[target])[target].dropna()
    if y.empty:
        raise InvalidInput(f"The target {target!r} has no values.", field="target")
    if task_type == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise InvalidInput(
                f"A regression target must be numeric; {target!r} is {y.dtype}. "
                "Choose a numeric column or make the project a classification.",
                field="target",
            )
    else:
        n = y.nunique()
        if n < 2:
            raise InvalidInput(
                f"The target {target!r} has a single class; a classifier needs two or more.", field="target"
            )
        if pd.api.types.is_float_dtype(y) and n > 50:
            raise InvalidInput(
                f"The target {target!r} looks continuous ({n} distinct values); is this a regression?", field="target"
            )
    return y


def normalise_search(task_type: str, algorithms: list[str], spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = dict(spec or {})
    method = spec.get("method", "tpe")
    if method not in search.METHODS:
        raise InvalidInput(f"search.method must be one of {', '.join(search.METHODS)}.", field="search")
    n_trials = spec.get("n_trials", 10)
    timeout = spec.get("timeout_seconds")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or not 0 <= n_trials <= 500:
        raise InvalidInput("search.n_trials must be an integer from 0 to 500.", field="search")
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0):
        raise InvalidInput("search.timeout_seconds must be a positive number.", field="search")
    user_spaces = spec.get("spaces") or {}
    if not isinstance(user_spaces, dict):
        raise InvalidInput("search.spaces must be an object keyed by algorithm.", field="search")
    spaces = {}
    try:
        for key in user_spaces:
            if key not in algorithms:
                raise catalogue.CatalogueError(
                    f"search.spaces has {key!r}, which is not among the algorithms.", "search"
                )
        for key in algorithms:
            algo = catalogue.get_algorithm(task_type, key)
            spaces[key] = catalogue.validate_space(algo, user_spaces.get(key, algo.space))
    except catalogue.CatalogueError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    ensemble_k = spec.get("ensemble_k", 3)
    if not isinstance(ensemble_k, int) or isinstance(ensemble_k, bool) or not 0 <= ensemble_k <= 10:
        raise InvalidInput("search.ensemble_k must be an integer from 0 (no ensemble) to 10.", field="search")
    return {
        "method": method,
        "n_trials": n_trials,
        "timeout_seconds": timeout,
        "spaces": spaces,
        "ensemble_k": ensemble_k,
        "seed": int(spec.get("seed", 42)) if isinstance(spec.get("seed", 42), int) else 42,
    }


def _cv_strategy(version: DatasetVersion, requested: str, task_type: str) -> str:
    split = version.split or {}
    split_strategy = split.get("strategy")
    if requested not in training.CV_STRATEGIES:
        raise InvalidInput(f"cv_strategy must be one of {', '.join(training.CV_STRATEGIES)}.", field="cv_strategy")
    if requested == "auto":
        # Folds match how the test set was held out: a grouped or time split needs grouped or
        # time folds, otherwise the CV score is more optimistic than the test score will be.
        if split_strategy == "group":
            return "group"
        if split_strategy == "time":
            return "time"
        return "stratified" if task_type == "classification" else "kfold"
    if requested == "stratified" and task_type != "classification":
        raise InvalidInput("Stratified folds need a classification task.", field="cv_strategy")
    if requested in ("group", "time") and split_strategy != requested:
        raise InvalidInput(
            f"{requested} folds need a {requested} split of the dataset version (it was split {split_strategy}).",
            field="cv_strategy",
        )
    if split_strategy in ("group", "time") and requested != split_strategy:
        raise InvalidInput(
            f"The version was split by {split_strategy}; use {split_strategy} folds so CV does not leak.",
            field="cv_strategy",
        )
    return requested


def _metric_for(project: Project, requested: str) -> str:
    task_type = project.task_type
    metric = requested or (
        project.success_metric if project.success_metric in metrics_for(task_type) else DEFAULT_METRIC[task_type]
    )
    if metric not in METRICS:
        raise InvalidInput(
            f"Unknown metric {metric!r}; choose one of {', '.join(metrics_for(task_type))}.", field="metric"
        )
    if METRICS[metric].task_type != task_type:
        raise InvalidInput(
            f"{METRICS[metric].label} is a {METRICS[metric].task_type} metric; this project is {task_type}. "
            f"Choose one of {', '.join(metrics_for(task_type))}.",
            field="metric",
        )
    return metric


def _algorithms_for(task_type: str, requested: list[str]) -> list[str]:
    algorithms = list(requested or catalogue.DEFAULT_ALGORITHMS[task_type])
    if len(set(algorithms)) != len(algorithms):
        raise InvalidInput("Each algorithm once, please.", field="algorithms")
    for key in algorithms:
        try:
            algo = catalogue.get_algorithm(task_type, key)
        except catalogue.CatalogueError as exc:
            raise InvalidInput(str(exc), field="algorithms") from None
        if algo.key == "dummy":
            raise InvalidInput("The dummy model always runs as a baseline; do not list it.", field="algorithms")
    return algorithms


def _positive_class(task_type: str, y: pd.Series, requested: Any) -> Any:
    """The binary positive class, checked against the target's classes (and stored explicitly)."""
    if task_type != "classification":
        if requested is not None:
            raise InvalidInput("A positive class applies to classification only.", field="positive_class")
        return None
    classes = [training.json_label(c) for c in sorted(y.unique().tolist())]
    if len(classes) != 2:
        if requested is not None:
            raise InvalidInput("A positive class applies to two classes; this target has more.", field="positive_class")
        return None
    if requested is None:
        return default_positive(classes)
    for c in classes:
        if c == requested or str(c) == str(requested):
            return c
    raise InvalidInput(f"Not one of the target's classes {classes!r}.", field="positive_class")


def _check_rows(version: DatasetVersion, y: pd.Series, *, folds: int, cv_strategy: str, task_type: str) -> None:
    counts = (version.split or {}).get("counts") or {}
    train_rows = counts.get("train") if isinstance(counts, dict) else None
    if isinstance(train_rows, int) and train_rows < folds * 2:
        raise InvalidInput(f"The training split has {train_rows} rows: too few for {folds} folds.", field="cv_folds")
    if task_type == "classification" and cv_strategy == "stratified":
        smallest = int(y.value_counts().min())
        if smallest < folds:
            raise InvalidInput(f"The rarest class has {smallest} rows: fewer than the {folds} folds.", field="cv_folds")


def _check_version(project: Project, version: DatasetVersion) -> None:
    if version.project_id != project.pk:
        raise InvalidInput("No such dataset version in this project.", field="dataset_version")
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The dataset version is {version.status}, not ready.", field="dataset_version")
    if not version.split_key:
        raise InvalidInput(
            "This dataset version has no train / validation / test split: split the data first.",
            field="dataset_version",
        )


def _check_recipe(steps: list[dict], version: DatasetVersion, target: str) -> None:
    """Compile against a small sample now, so a broken recipe is a 400 and not a failed job."""
    if not steps:
        return
    from datasets.selectors import version_frame

    sample = version_frame(version).head(200)
    try:
        compile_recipe(steps, frame=sample, target=target)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field="recipe") from None


def experiment_create(*, project: Project, created_by: Any, config: ExperimentConfig) -> Experiment:
    """Check the configuration, create the experiment and queue its training job."""
    version = config.dataset_version
    task_type = project.task_type
    _check_version(project, version)
    if config.recipe is not None and config.recipe.project_id != project.pk:
        raise InvalidInput("No such recipe in this project.", field="recipe")
    metric = _metric_for(project, config.metric)
    if not isinstance(config.cv_folds, int) or not 2 <= config.cv_folds <= 20:
        raise InvalidInput("cv_folds must be from 2 to 20.", field="cv_folds")
    cv_strategy = _cv_strategy(version, config.cv_strategy or "auto", task_type)
    algorithms = _algorithms_for(task_type, config.algorithms)
    search_spec = normalise_search(task_type, algorithms, config.search)
    y = _check_target(version, config.target, task_type)
    positive = _positive_class(task_type, y, config.positive_class)
    _check_rows(version, y, folds=config.cv_folds, cv_strategy=cv_strategy, task_type=task_type)
    steps = list(config.recipe.steps) if config.recipe else []
    _check_recipe(steps, version, config.target)
    name = (config.name or "").strip()[:120] or f"{config.target} on {version.dataset.name} v{version.number}"
    with transaction.atomic():
        experiment = Experiment.objects.create(
            project=project,
            name=name,
            dataset_version=version,
            target=config.target,
            task_type=task_type,
            metric=metric,
            positive_class=positive,
            recipe=config.recipe,
            recipe_steps=steps,
            cv_folds=config.cv_folds,
            cv_strategy=cv_strategy,
            algorithms=algorithms,
            search=search_spec,
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        )
        experiment.job = job_enqueue(
            project=project,
            kind="experiment.train",
            created_by=created_by,
            params={"experiment_id": experiment.pk},
            target=experiment,
            message="Waiting for a training worker",
        )
        experiment.save(update_fields=["job"])
        experiment_created_event(actor=created_by, experiment=experiment)
    return experiment


def experiment_tune(
    *, experiment: Experiment, created_by: Any, algorithm: str = "", n_trials: int = 20, method: str = "tpe"
) -> Experiment:
    """A follow-up experiment that tunes one algorithm (default: the best run's) further.

    Same data, target, metric, recipe and folds; `parent` links it to this experiment.
    """
    from experiments.selectors import leaderboard

    if not algorithm:
        best = next(
            (r for r in leaderboard(experiment) if r.status == RunStatus.SUCCEEDED and r.kind == "candidate"), None
        )
        if best is None:
            raise InvalidInput("No successful candidate run to tune yet.", field="algorithm")
        algorithm = best.algorithm
    spaces = (
        {algorithm: (experiment.search.get("spaces") or {}).get(algorithm)}
        if algorithm in (experiment.search.get("spaces") or {})
        else {}
    )
    config = ExperimentConfig(
        dataset_version=experiment.dataset_version,
        target=experiment.target,
        name=f"{experiment.name} · tune {algorithm}"[:120],
        metric=experiment.metric,
        recipe=experiment.recipe,
        cv_folds=experiment.cv_folds,
        cv_strategy=experiment.cv_strategy,
        algorithms=[algorithm],
        search={"method": method, "n_trials": n_trials, "ensemble_k": 0, "spaces": spaces},
    )
    if experiment.recipe is None and experiment.recipe_steps:
        raise InvalidInput("The recipe this experiment used is gone; start a new experiment.", field="recipe")
    with transaction.atomic():
        child = experiment_create(project=experiment.project, created_by=created_by, config=config)
        Experiment.objects.filter(pk=child.pk).update(parent=experiment)
        child.parent = experiment
    return child


def _fixed_candidates(champion_run: Run) -> tuple[list[dict[str, Any]], int]:
    """The champion run's configuration as fixed candidates: itself, or an ensemble's members
    (then an ensemble of them). Returns the candidates and the ensemble size (0: none)."""
    if champion_run.kind != "ensemble":
        return [{"algorithm": champion_run.algorithm, "params": champion_run.params}], 0
    members = Run.objects.filter(pk__in=champion_run.members, experiment_id=champion_run.experiment_id).order_by("pk")
    candidates = [{"algorithm": m.algorithm, "params": m.params} for m in members]
    return candidates, len(candidates)


def experiment_retrain(
    *, parent: Experiment, champion_run: Run, dataset_version: DatasetVersion, created_by: Any, reason: str = ""
) -> Experiment:
    """A retrain's challenger experiment: the parent's configuration (target, metric, positive
    class, recipe steps, folds) on a new dataset version, with the champion run's algorithm and
    parameters as its candidate (for an ensemble champion: its members and their ensemble).

    No training job is queued: the caller, a job already holding a worker, trains it in its own
    process (`coordinator.experiment_run_inline`), then evaluates it once (`evaluate_claim`,
    `evaluation.evaluate_execute`). A redelivered retrain finds the experiment it created.
    """
    existing = Experiment.objects.filter(parent=parent, dataset_version=dataset_version).first()
    if existing is not None:
        return existing
    if champion_run.kind == "external":
        raise InvalidInput(
            "The champion is an external run: the platform does not know how to retrain it. Log a new external "
            "run on the new data instead.",
            field="run",
        )
    candidates, ensemble_k = _fixed_candidates(champion_run)
    algorithms = sorted({c["algorithm"] for c in candidates})
    with transaction.atomic():
        experiment = Experiment.objects.create(
            project=parent.project,
            name=f"Retrain of {parent.name}"[:120],
            dataset_version=dataset_version,
            target=parent.target,
            task_type=parent.task_type,
            metric=parent.metric,
            positive_class=parent.positive_class,
            recipe=parent.recipe,
            recipe_steps=parent.recipe_steps,
            cv_folds=parent.cv_folds,
            # The new version's split is the retrain's own (fresh holdout = test): plain folds.
            cv_strategy="stratified" if parent.task_type == "classification" else "kfold",
            algorithms=algorithms,
            search={
                "method": "fixed",
                "candidates": candidates,
                "n_trials": len(candidates),
                "ensemble_k": ensemble_k,
                "spaces": {},
                "reason": reason,
            },
            parent=parent,
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        )
        experiment_created_event(actor=created_by, experiment=experiment)
    return experiment


# --- cancel -----------------------------------------------------------------------------------


def experiment_cancel(*, experiment: Experiment, actor: Any) -> Experiment:
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status in EXPERIMENT_TERMINAL:
            raise Conflict(f"The experiment is already {experiment.status}.")
        experiment.status = ExperimentStatus.CANCELLED
        experiment.finished_at = timezone.now()
        experiment.save(update_fields=["status", "finished_at"])
        Run.objects.filter(experiment=experiment, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        job_ids = [r.job_id for r in experiment.runs.filter(status=RunStatus.RUNNING) if r.job_id]
        for job in Job.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL):
            job_cancel(job=job, actor=actor)
        if experiment.job:  # a finished coordinator too: its rolled-up status then reads cancelled
            job_cancel(job=experiment.job, actor=actor)
        Job.objects.filter(parent_id=experiment.job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
        )
        experiment_cancelled_event(actor=actor, experiment=experiment)
    return experiment


# --- diagnostics ------------------------------------------------------------------------------


def diagnose_request(*, run: Run, actor: Any) -> Run:
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict("Only a run that finished can be diagnosed.")
    if run.kind == "external":
        raise Conflict(
            "An external run is not refit by the platform, so it has no diagnostics; its scores on "
            "the validation rows are in its `external` field."
        )
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).select_related("diagnostics_job").get(pk=run.pk)
        if run.diagnostics_job and not run.diagnostics_job.is_terminal:
            return run
        run.diagnostics_job = job_enqueue(
            project=run.project,
            kind="experiment.diagnose",
            created_by=actor,
            params={"run_id": run.pk},
            target=run,
            message="Waiting for a worker",
        )
        run.save(update_fields=["diagnostics_job"])
    return run


# --- the one final evaluation -----------------------------------------------------------------


def _claim_test_set(*, experiment: Experiment, run: Run, actor: Any) -> Experiment:
    """Lock the version and the experiment, check the one look at the locked test set is still
    free, and record who takes it for `run` (the caller saves). Call inside a transaction."""
    if run.experiment_id != experiment.pk:
        raise InvalidInput("That run does not belong to this experiment.", field="run")
    if run.status != RunStatus.SUCCEEDED:
        raise InvalidInput("Only a run that finished successfully can be evaluated.", field="run")
    if experiment.status != ExperimentStatus.SUCCEEDED:
        raise Conflict("Evaluate once training has finished.")
    version = DatasetVersion.objects.select_for_update().get(pk=experiment.dataset_version_id)
    experiment = (
        Experiment.objects.select_for_update(of=("self",)).select_related("evaluation_job").get(pk=experiment.pk)
    )
    # A claim whose job failed before the test rows were read (test_used_at is set just
    # before reading them) may be taken again: the test set is still unseen.
    retry = (
        experiment.evaluated_run_id is not None
        and experiment.test_evaluation is None
        and version.test_used_at is None
        and experiment.evaluation_job is not None
        and experiment.evaluation_job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
    )
    if experiment.evaluated_run_id is not None and not retry:
        raise Conflict("The locked test set has already been used by this experiment's final evaluation.")
    if version.test_used_at is not None or (
        Experiment.objects.filter(dataset_version=version, evaluated_run__isnull=False)
        .exclude(pk=experiment.pk)
        .exists()
    ):
        raise Conflict(
            "The locked test set of this dataset version has already been used by a final evaluation; "
            "a second look would no longer be an honest estimate. Make a new version and split it."
        )
    experiment.evaluated_run = run
    experiment.evaluated_at = timezone.now()
    experiment.evaluated_by = actor if getattr(actor, "is_authenticated", False) else None
    return experiment


def evaluate_request(*, experiment: Experiment, run: Run, actor: Any) -> Experiment:
    """Claim the one look at the locked test set for `run`; the evaluation itself is a job."""
    with transaction.atomic():
        experiment = _claim_test_set(experiment=experiment, run=run, actor=actor)
        experiment.evaluation_job = job_enqueue(
            project=experiment.project,
            kind="experiment.evaluate",
            created_by=actor,
            params={"experiment_id": experiment.pk, "run_id": run.pk},
            target=experiment,
            message="Waiting for a worker",
        )
        experiment.save(update_fields=["evaluated_run", "evaluated_at", "evaluated_by", "evaluation_job"])
        evaluation_started_event(actor=actor, experiment=experiment, run_id=run.pk)
    return experiment


def evaluate_claim(*, experiment: Experiment, run: Run, actor: Any) -> Experiment:
    """Claim the one look at the locked test set for an evaluation the caller runs itself (a
    retrain's job: `evaluation.evaluate_execute` next, in the same process)."""
    with transaction.atomic():
        experiment = _claim_test_set(experiment=experiment, run=run, actor=actor)
        experiment.save(update_fields=["evaluated_run", "evaluated_at", "evaluated_by"])
        evaluation_started_event(actor=actor, experiment=experiment, run_id=run.pk)
    return experiment
