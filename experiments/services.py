"""Experiments: creation (with the checks that keep a user out of trouble), the non-blocking
trial coordinator, cancellation, diagnostics and the one final evaluation.

Coordinator design (no job ever waits for another):
- `experiment.train` (the experiment's job) runs `experiment_advance` once: it queues the
  baseline runs and the first `EXPERIMENT_PARALLEL_TRIALS` candidate trials as child jobs,
  then returns.
- Each `experiment.trial` job cross-validates its Run, records it, then calls
  `experiment_advance` again. Under a row lock on the experiment, advance counts what is
  finished and in flight, asks the search for the next parameters (for TPE an in-memory Optuna
  study rebuilt from our finished runs), queues new trials up to the budget, queues the
  ensemble at the end and finally marks the experiment finished.
So one worker runs trials one after another, several workers share the trials, and a solo
pool never deadlocks waiting on its own children.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets.models import DatasetVersion, Recipe, VersionStatus
from datasets.recipes import RecipeError, RecipePlan, compile_recipe
from experiments.ml import catalogue, search, training
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from jobs.models import TERMINAL, Job, JobStatus
from jobs.runner import job_cancel, job_enqueue
from mlplatform.errors import Conflict, InvalidInput
from projects.metrics import DEFAULT_METRIC, METRICS, beats, metrics_for
from projects.models import Project
from projects.services import audit_record

logger = logging.getLogger(__name__)

RUN_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
EXPERIMENT_TERMINAL = (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


def parallel_trials() -> int:
    return int(getattr(settings, "EXPERIMENT_PARALLEL_TRIALS", 4))


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


def experiment_create(*, project: Project, created_by: Any, config: ExperimentConfig) -> Experiment:
    """Check the configuration, create the experiment and queue its training job."""
    version = config.dataset_version
    task_type = project.task_type
    if version.project_id != project.pk:
        raise InvalidInput("No such dataset version in this project.", field="dataset_version")
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The dataset version is {version.status}, not ready.", field="dataset_version")
    if not version.split_key:
        raise InvalidInput(
            "This dataset version has no train / validation / test split: split the data first.",
            field="dataset_version",
        )
    if config.recipe is not None and config.recipe.project_id != project.pk:
        raise InvalidInput("No such recipe in this project.", field="recipe")
    metric = config.metric or (
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
    if not isinstance(config.cv_folds, int) or not 2 <= config.cv_folds <= 20:
        raise InvalidInput("cv_folds must be from 2 to 20.", field="cv_folds")
    cv_strategy = _cv_strategy(version, config.cv_strategy or "auto", task_type)
    algorithms = list(config.algorithms or catalogue.DEFAULT_ALGORITHMS[task_type])
    if len(set(algorithms)) != len(algorithms):
        raise InvalidInput("Each algorithm once, please.", field="algorithms")
    for key in algorithms:
        try:
            algo = catalogue.get_algorithm(task_type, key)
        except catalogue.CatalogueError as exc:
            raise InvalidInput(str(exc), field="algorithms") from None
        if algo.key == "dummy":
            raise InvalidInput("The dummy model always runs as a baseline; do not list it.", field="algorithms")
    search_spec = normalise_search(task_type, algorithms, config.search)
    y = _check_target(version, config.target, task_type)
    counts = (version.split or {}).get("counts") or {}
    train_rows = counts.get("train") if isinstance(counts, dict) else None
    if isinstance(train_rows, int) and train_rows < config.cv_folds * 2:
        raise InvalidInput(
            f"The training split has {train_rows} rows: too few for {config.cv_folds} folds.", field="cv_folds"
        )
    if task_type == "classification" and cv_strategy == "stratified":
        smallest = int(y.value_counts().min())
        if smallest < config.cv_folds:
            raise InvalidInput(
                f"The rarest class has {smallest} rows: fewer than the {config.cv_folds} folds.", field="cv_folds"
            )
    steps = list(config.recipe.steps) if config.recipe else []
    if steps:
        # Compile against a small sample now, so a broken recipe is a 400 and not a failed job.
        from datasets.selectors import version_frame

        sample = version_frame(version).head(200)
        try:
            compile_recipe(steps, frame=sample, target=config.target)
        except RecipeError as exc:
            raise InvalidInput(str(exc), field="recipe") from None
    name = (config.name or "").strip()[:120] or f"{config.target} on {version.dataset.name} v{version.number}"
    with transaction.atomic():
        experiment = Experiment.objects.create(
            project=project,
            name=name,
            dataset_version=version,
            target=config.target,
            task_type=task_type,
            metric=metric,
            recipe=config.recipe,
            recipe_steps=steps,
            cv_folds=config.cv_folds,
            cv_strategy=cv_strategy,
            algorithms=algorithms,
            search=search_spec,
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        )
        job = job_enqueue(
            project=project,
            kind="experiment.train",
            created_by=created_by,
            params={"experiment_id": experiment.pk},
            target=experiment,
            message="Waiting for a training worker",
        )
        experiment.job = job
        experiment.save(update_fields=["job"])
        audit_record(
            actor=created_by,
            action="experiment.created",
            project=project,
            obj=experiment,
            data={"target": config.target, "metric": metric, "algorithms": algorithms, "method": search_spec["method"]},
        )
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


# --- the coordinator --------------------------------------------------------------------------


def planned_total(experiment: Experiment) -> int:
    spec = experiment.search or {}
    n = len(catalogue.BASELINES[experiment.task_type]) + int(spec.get("n_trials", 0))
    if spec.get("method") == "grid":
        grid_size = sum(len(search.grid(s)) for s in (spec.get("spaces") or {}).values())
        n = len(catalogue.BASELINES[experiment.task_type]) + min(int(spec.get("n_trials", 0)), grid_size)
    if int(spec.get("ensemble_k", 0)) >= 2:
        n += 1
    return max(n, 1)


def _enqueue_run(experiment: Experiment, *, algorithm: str, params: dict, kind: str, trial_number: int, members=None):
    run = Run.objects.create(
        project=experiment.project,
        experiment=experiment,
        algorithm=algorithm,
        params=catalogue.json_params(params),
        kind=kind,
        trial_number=trial_number,
        members=members or [],
    )
    run.job = job_enqueue(
        project=experiment.project,
        kind="experiment.trial",
        created_by=experiment.created_by,
        params={"run_id": run.pk, "experiment_id": experiment.pk},
        target=run,
        parent=experiment.job,
        message="Waiting for a worker",
    )
    run.save(update_fields=["job"])
    return run


def _next_candidate(experiment: Experiment, runs: list[Run]) -> tuple[str, dict] | None:
    spec = experiment.search
    counts = {a: 0 for a in experiment.algorithms}
    for r in runs:
        if r.kind == "candidate" and r.algorithm in counts:
            counts[r.algorithm] += 1
    higher = METRICS[experiment.metric].higher_is_better
    for algo in sorted(experiment.algorithms, key=lambda a: (counts[a], experiment.algorithms.index(a))):
        space = spec["spaces"].get(algo, {})
        index = counts[algo]
        if not space and index >= 1:
            continue  # nothing to tune: one run says it all
        history = [
            search.Finished(r.params, r.score if r.status == RunStatus.SUCCEEDED else None)
            for r in runs
            if r.kind == "candidate" and r.algorithm == algo and r.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
        ]
        params = search.suggest(
            spec["method"],
            space,
            index=index,
            history=history,
            higher_is_better=higher,
            seed=int(spec.get("seed", 42)),
        )
        if params is not None:
            return algo, params
    return None


def experiment_advance(*, experiment_id: int) -> str:
    """One coordinator step: queue what may run now, or finish. Safe to call any number of times."""
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update(of=("self",)).select_related("project", "job").get(pk=experiment_id)
        )
        if experiment.status in EXPERIMENT_TERMINAL:
            return experiment.status
        now = timezone.now()
        runs = list(experiment.runs.all())
        if experiment.status == ExperimentStatus.QUEUED:
            experiment.status = ExperimentStatus.RUNNING
            experiment.started_at = experiment.started_at or now
        if not runs:
            for i, key in enumerate(catalogue.BASELINES[experiment.task_type]):
                runs.append(_enqueue_run(experiment, algorithm=key, params={}, kind="baseline", trial_number=i))
        _reconcile_lost_trials(runs, now)
        spec = experiment.search
        in_flight = [r for r in runs if r.status not in RUN_TERMINAL]
        candidates = [r for r in runs if r.kind == "candidate"]
        timeout = spec.get("timeout_seconds")
        timed_out = bool(timeout) and (now - experiment.started_at).total_seconds() > float(timeout)
        exhausted = timed_out
        next_number = max((r.trial_number for r in runs), default=0) + 1
        while not exhausted and len(in_flight) < parallel_trials() and len(candidates) < spec["n_trials"]:
            nxt = _next_candidate(experiment, runs)
            if nxt is None:
                exhausted = True
                break
            run = _enqueue_run(experiment, algorithm=nxt[0], params=nxt[1], kind="candidate", trial_number=next_number)
            next_number += 1
            runs.append(run)
            candidates.append(run)
            in_flight.append(run)
        search_done = exhausted or len(candidates) >= spec["n_trials"]
        if search_done and not in_flight and not any(r.kind == "ensemble" for r in runs):
            members = _ensemble_members(experiment, runs)
            if members:
                run = _enqueue_run(
                    experiment,
                    algorithm="ensemble",
                    params={"members": [m.pk for m in members]},
                    kind="ensemble",
                    trial_number=next_number,
                    members=[m.pk for m in members],
                )
                runs.append(run)
                in_flight.append(run)
        done = [r for r in runs if r.status in RUN_TERMINAL]
        total = max(planned_total(experiment), len(runs))
        experiment.progress = min(99, int(100 * len(done) / total)) if in_flight or not search_done else 100
        if search_done and not in_flight:
            ok = [r for r in runs if r.status == RunStatus.SUCCEEDED]
            experiment.status = ExperimentStatus.SUCCEEDED if ok else ExperimentStatus.FAILED
            experiment.error = "" if ok else "Every trial failed; see each run's error."
            experiment.finished_at = now
            experiment.progress = 100
        experiment.save(update_fields=["status", "started_at", "progress", "error", "finished_at"])
        return experiment.status


def _reconcile_lost_trials(runs: list[Run], now) -> None:
    """A trial whose job ended without finishing its run (dead-lettered after its worker died
    on every attempt, or failed outside the handler) is a failed run, not a stuck experiment."""
    waiting = {r.job_id: r for r in runs if r.status not in RUN_TERMINAL and r.job_id}
    if not waiting:
        return
    for job in Job.objects.filter(pk__in=waiting, status__in=[JobStatus.FAILED, JobStatus.CANCELLED]):
        run = waiting[job.pk]
        run.status = RunStatus.FAILED if job.status == JobStatus.FAILED else RunStatus.CANCELLED
        run.error = f"The trial job {job.status}: {job.error}"[:5000]
        run.finished_at = now
        Run.objects.filter(pk=run.pk).exclude(status__in=RUN_TERMINAL).update(
            status=run.status, error=run.error, finished_at=now
        )


def _ensemble_members(experiment: Experiment, runs: list[Run]) -> list[Run]:
    k = int(experiment.search.get("ensemble_k", 0))
    if k < 2:
        return []
    higher = METRICS[experiment.metric].higher_is_better
    ok = [
        r
        for r in runs
        if r.status == RunStatus.SUCCEEDED
        and r.kind in ("candidate", "baseline")
        and r.algorithm != "dummy"
        and r.score is not None
    ]
    ok.sort(key=lambda r: -r.score if higher else r.score)
    return ok[:k] if len(ok) >= 2 else []


# --- one trial --------------------------------------------------------------------------------


@dataclass
class TrainingData:
    X: pd.DataFrame
    y: pd.Series
    groups: pd.Series | None
    plan: RecipePlan


def training_data(experiment: Experiment, frame: pd.DataFrame) -> TrainingData:
    """Rows with a target, the compiled recipe and the feature matrix (raw columns)."""
    frame = frame[frame[experiment.target].notna()].reset_index(drop=True)
    split = experiment.dataset_version.split or {}
    if experiment.cv_strategy == "time" and split.get("column") in frame.columns:
        frame = frame.sort_values(split["column"], kind="stable").reset_index(drop=True)
    try:
        plan = compile_recipe(experiment.recipe_steps, frame=frame, target=experiment.target)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field="recipe") from None
    groups = None
    if experiment.cv_strategy == "group" and split.get("column") in frame.columns:
        groups = frame[split["column"]]
    return TrainingData(frame[plan.feature_columns], frame[experiment.target], groups, plan)


def build_model(experiment: Experiment, run: Run, plan: RecipePlan) -> Any:
    if run.kind == "ensemble":
        members = []
        for member in Run.objects.filter(pk__in=run.members, experiment=experiment).order_by("pk"):
            algo = catalogue.get_algorithm(experiment.task_type, member.algorithm)
            est = algo.build(catalogue.estimator_params(algo, member.params))
            members.append((f"run{member.pk}", training.build_pipeline(plan.preprocessor, est)))
        return training.ensemble_pipeline(members, experiment.task_type)
    algo = catalogue.get_algorithm(experiment.task_type, run.algorithm)
    est = algo.build(catalogue.estimator_params(algo, run.params))
    return training.build_pipeline(plan.preprocessor, est)


def trial_execute(*, run_id: int, ctx: Any = None) -> dict[str, Any]:
    """Cross-validate one run (idempotent: a finished run is not trained again), then advance."""
    from datasets.selectors import split_frames

    run = Run.objects.select_related("experiment", "experiment__dataset_version", "experiment__project").get(pk=run_id)
    experiment = run.experiment
    if run.status in RUN_TERMINAL:
        experiment_advance(experiment_id=experiment.pk)
        return {"run": run.pk, "status": run.status, "skipped": True}
    if experiment.status in (ExperimentStatus.CANCELLED, ExperimentStatus.FAILED):
        Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        return {"run": run.pk, "status": "cancelled"}
    Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    from jobs.runner import JobCancelled, JobLost

    values: dict[str, Any]
    try:
        if ctx:
            ctx.progress(5, f"Loading data for {run.algorithm}")
        frames = split_frames(experiment.dataset_version)
        data = training_data(experiment, frames.train)
        pipeline = build_model(experiment, run, data.plan)
        cv = training.make_cv(experiment.cv_strategy, experiment.cv_folds, data.y, data.groups, experiment.task_type)
        result = training.cross_validate_pipeline(
            pipeline,
            data.X,
            data.y,
            task_type=experiment.task_type,
            cv=cv,
            groups=data.groups,
            row_filter=data.plan.row_filter,
            keep_models=True,
            keep_first_only=True,
            check=ctx.check if ctx else None,
            # Progress per fold: a trial on big data is minutes of folds, not minutes at 5%.
            on_fold=(lambda i, n: ctx.progress(10 + 85 * i / n, f"{run.algorithm}: fold {i + 1} of {n}"))
            if ctx
            else None,
        )
        # Size of one fitted fold model: pickled only to measure it, never stored or loaded.
        size = len(pickle.dumps(result.fold_models[0], protocol=5)) if result.fold_models else None
        score = (result.cv_metrics.get(experiment.metric) or {}).get("mean")
        values = {
            "status": RunStatus.SUCCEEDED if score is not None else RunStatus.FAILED,
            "error": "" if score is not None else f"{experiment.metric} could not be computed for this model.",
            "cv_metrics": result.cv_metrics,
            "train_metrics": result.train_metrics,
            "score": score,
            "fit_seconds": result.fit_seconds,
            "predict_seconds": result.predict_seconds,
            "model_size_bytes": size,
        }
    except (JobCancelled, JobLost):
        raise
    except Exception as exc:
        logger.info("trial %s failed: %s", run.pk, exc, exc_info=True)
        values = {"status": RunStatus.FAILED, "error": f"{type(exc).__name__}: {exc}"[:5000]}
    values["finished_at"] = timezone.now()
    Run.objects.filter(pk=run.pk).exclude(status__in=RUN_TERMINAL).update(**values)
    experiment_advance(experiment_id=experiment.pk)
    return {"run": run.pk, "status": values["status"], "score": values.get("score")}


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
        audit_record(actor=actor, action="experiment.cancelled", project=experiment.project, obj=experiment)
    return experiment


def run_cancelled(run_id: int) -> None:
    Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Cancelled"
    )


# --- diagnostics ------------------------------------------------------------------------------


def diagnose_request(*, run: Run, actor: Any) -> Run:
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict("Only a run that finished can be diagnosed.")
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
    result = training.diagnostics(
        model,
        X_tr,
        y_tr,
        val[data.plan.feature_columns],
        val[experiment.target],
        task_type=experiment.task_type,
        primary_metric=experiment.metric,
        classes=list(np.unique(data.y)) if classes else None,
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


# --- the one final evaluation -----------------------------------------------------------------


def evaluate_request(*, experiment: Experiment, run: Run, actor: Any) -> Experiment:
    """Claim the one look at the locked test set for `run`; the evaluation itself is a job."""
    if run.experiment_id != experiment.pk:
        raise InvalidInput("That run does not belong to this experiment.", field="run")
    if run.status != RunStatus.SUCCEEDED:
        raise InvalidInput("Only a run that finished successfully can be evaluated.", field="run")
    if experiment.status != ExperimentStatus.SUCCEEDED:
        raise Conflict("Evaluate once training has finished.")
    with transaction.atomic():
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
        experiment.evaluation_job = job_enqueue(
            project=experiment.project,
            kind="experiment.evaluate",
            created_by=actor,
            params={"experiment_id": experiment.pk, "run_id": run.pk},
            target=experiment,
            message="Waiting for a worker",
        )
        experiment.save(update_fields=["evaluated_run", "evaluated_at", "evaluated_by", "evaluation_job"])
        audit_record(
            actor=actor,
            action="experiment.evaluation_started",
            project=experiment.project,
            obj=experiment,
            data={"run": run.pk},
        )
    return experiment


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
        if meets and not beats(
            bar_metric,
            entry["ci_low"] if METRICS[bar_metric].higher_is_better else entry["ci_high"],
            project.success_threshold,
        ):
            ci += " (the interval reaches below the threshold: the margin is not certain)"
    head = " and ".join(parts) if parts else "no baseline or threshold to compare with"
    text = f"{head[0].upper()}{head[1:]}: {label} {_fmt(value)}{ci}."
    return {"metric": bar_metric, "beats_baseline": beats_baseline, "meets_threshold": meets, "text": text}


def evaluate_execute(*, experiment_id: int, ctx: Any = None) -> dict[str, Any]:
    """Refit on train + validation, predict the locked test rows once, bootstrap the metrics."""
    from datasets.selectors import locked_test_frame, split_frames
    from mlplatform.artifacts import model_save

    experiment = Experiment.objects.select_related("project", "dataset_version", "evaluated_run").get(pk=experiment_id)
    run = experiment.evaluated_run
    if run is None:
        raise InvalidInput("No run was chosen for the final evaluation.", field="run")
    if experiment.test_evaluation:
        return {"already": True}
    if ctx:
        ctx.progress(5, "Refitting on train + validation")
    frames = split_frames(experiment.dataset_version)
    full = pd.concat([frames.train, frames.val], ignore_index=True)
    data = training_data(experiment, full)
    X_fit, y_fit = data.plan.row_filter(data.X, data.y)
    model = build_model(experiment, run, data.plan)
    model.fit(X_fit, y_fit)
    stored = model_save(model, prefix=f"projects/{experiment.project_id}/models")
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
    proba = training._align_proba(model, proba, classes)
    metrics = training.bootstrap_ci(
        experiment.task_type,
        y_test,
        pred,
        proba,
        classes,
        n_boot=int(getattr(settings, "EXPERIMENT_BOOTSTRAP_SAMPLES", 1000)),
    )
    evaluation = {
        "metric": experiment.metric,
        "run": run.pk,
        "metrics": metrics,
        "feature_columns": list(data.plan.feature_columns),
        "classes": [] if classes is None else [training.json_label(c) for c in model.classes_],
        "n_test": len(y_test),
        "n_fit": len(y_fit),
        "predict_seconds": predict_seconds,
        "verdict": verdict_for(experiment.project, experiment.metric, metrics),
        "cv_score": run.score,
        "evaluated_at": timezone.now().isoformat(),
    }
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(final_artifact_key=stored.key, final_artifact_sha256=stored.sha256)
        Experiment.objects.filter(pk=experiment.pk).update(test_evaluation=evaluation)
        audit_record(
            actor=experiment.evaluated_by,
            action="experiment.evaluated",
            project=experiment.project,
            obj=experiment,
            data={"run": run.pk, "verdict": evaluation["verdict"]["text"]},
        )
    return {"verdict": evaluation["verdict"]["text"]}
