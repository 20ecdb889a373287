"""The trial coordinator: runs of an experiment queued as jobs, one coordinator step at a time,
and (for a job that must not wait for others, the retrain) the same runs trained in process.

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
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets.recipes import RecipeError, RecipePlan, compile_recipe
from experiments.ml import catalogue, search, training
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from jobs.models import Job, JobStatus
from jobs.runner import job_enqueue
from mlplatform.errors import InvalidInput
from projects.metrics import METRICS

logger = logging.getLogger(__name__)

RUN_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
EXPERIMENT_TERMINAL = (ExperimentStatus.SUCCEEDED, ExperimentStatus.FAILED, ExperimentStatus.CANCELLED)


def parallel_trials() -> int:
    return settings.EXPERIMENT_PARALLEL_TRIALS


def experiment_start(*, experiment_id: int) -> dict[str, Any]:
    """The `experiment.train` job: queue the first trials. Its result names how many child jobs
    the experiment plans, so the job's rolled-up progress counts them (jobs.selectors)."""
    status = experiment_advance(experiment_id=experiment_id)
    return {"status": status, "children_expected": planned_total(Experiment.objects.get(pk=experiment_id))}


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


def _cross_validate(experiment: Experiment, run: Run, train: pd.DataFrame, ctx: Any) -> dict[str, Any]:
    """Cross-validate one run on the training rows; the Run fields to record (failed with its error
    when the model fails: a bad candidate is a result, not a crash)."""
    from jobs.runner import JobCancelled, JobLost

    try:
        data = training_data(experiment, train)
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
            positive=experiment.positive_class,
        )
    except (JobCancelled, JobLost):
        raise
    except Exception as exc:
        logger.info("trial %s failed: %s", run.pk, exc, exc_info=True)
        return {"status": RunStatus.FAILED, "error": f"{type(exc).__name__}: {exc}"[:5000]}
    # Size of one fitted fold model: pickled only to measure it, never stored or loaded.
    size = len(pickle.dumps(result.fold_models[0], protocol=5)) if result.fold_models else None
    score = (result.cv_metrics.get(experiment.metric) or {}).get("mean")
    return {
        "status": RunStatus.SUCCEEDED if score is not None else RunStatus.FAILED,
        "error": "" if score is not None else f"{experiment.metric} could not be computed for this model.",
        "cv_metrics": result.cv_metrics,
        "train_metrics": result.train_metrics,
        "score": score,
        "fit_seconds": result.fit_seconds,
        "predict_seconds": result.predict_seconds,
        "model_size_bytes": size,
    }


def _record(run: Run, values: dict[str, Any]) -> None:
    values["finished_at"] = timezone.now()
    Run.objects.filter(pk=run.pk).exclude(status__in=RUN_TERMINAL).update(**values)


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
    if ctx:
        ctx.progress(5, f"Loading data for {run.algorithm}")
    values = _cross_validate(experiment, run, split_frames(experiment.dataset_version).train, ctx)
    _record(run, values)
    experiment_advance(experiment_id=experiment.pk)
    return {"run": run.pk, "status": values["status"], "score": values.get("score")}


# --- in process (a retrain's challenger) -----------------------------------------------------------


def _inline_run(experiment: Experiment, **fields: Any) -> Run:
    existing = Run.objects.filter(experiment=experiment, trial_number=fields["trial_number"]).first()
    if existing is not None:  # a redelivered job: the run is there, finished or not
        return existing
    return Run.objects.create(project=experiment.project, experiment=experiment, **fields)


def experiment_run_inline(*, experiment: Experiment, ctx: Any = None) -> Experiment:
    """Train an experiment whose candidates are fixed (`search["candidates"]`, see
    `services.experiment_retrain`) in this process: the baselines, each candidate, their ensemble.

    For a job that already holds a worker (the retrain): waiting there for trial jobs would
    deadlock a single worker. Idempotent: runs already finished are kept.
    """
    from datasets.selectors import split_frames

    spec = experiment.search or {}
    Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.QUEUED).update(
        status=ExperimentStatus.RUNNING, started_at=timezone.now()
    )
    planned = [
        {"algorithm": key, "params": {}, "kind": "baseline"} for key in catalogue.BASELINES[experiment.task_type]
    ]
    planned += [{**c, "kind": "candidate"} for c in spec.get("candidates", [])]
    runs = [
        _inline_run(
            experiment,
            algorithm=p["algorithm"],
            params=catalogue.json_params(p["params"]),
            kind=p["kind"],
            trial_number=i,
        )
        for i, p in enumerate(planned)
    ]
    train = split_frames(experiment.dataset_version).train
    total = len(runs) + (1 if int(spec.get("ensemble_k", 0)) >= 2 else 0)
    for i, run in enumerate(runs):
        if run.status not in RUN_TERMINAL:
            if ctx:
                ctx.check()
            _record(run, _cross_validate(experiment, run, train, ctx))
        Experiment.objects.filter(pk=experiment.pk).update(progress=min(99, int(100 * (i + 1) / total)))
    runs = list(experiment.runs.all())
    members = _ensemble_members(experiment, [r for r in runs if r.kind == "candidate"])
    if members and not any(r.kind == "ensemble" for r in runs):
        ids = [m.pk for m in members]
        run = _inline_run(
            experiment,
            algorithm="ensemble",
            params={"members": ids},
            kind="ensemble",
            trial_number=len(planned),
            members=ids,
        )
        _record(run, _cross_validate(experiment, run, train, ctx))
    ok = experiment.runs.filter(status=RunStatus.SUCCEEDED).exists()
    Experiment.objects.filter(pk=experiment.pk).update(
        status=ExperimentStatus.SUCCEEDED if ok else ExperimentStatus.FAILED,
        error="" if ok else "Every run failed; see each run's error.",
        progress=100,
        finished_at=timezone.now(),
    )
    experiment.refresh_from_db()
    return experiment


def run_cancelled(run_id: int) -> None:
    Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Cancelled"
    )


# --- a job that ended without doing its work (the runner's on_failure hooks) ------------------------


def trial_job_ended(*, run_id: Any, cancelled: bool, error: str) -> None:
    """A trial job failed or was cancelled by any path (the handler raised, its worker died on
    every attempt, the sweep gave up, a user cancelled it): its run ends failed (or cancelled)
    with the job's error, and the coordinator takes its step, so the next trials are queued or
    the experiment finishes with the right status, never "running" forever."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
    what = "was cancelled" if cancelled else "failed"
    Run.objects.filter(pk=run.pk).exclude(status__in=RUN_TERMINAL).update(
        status=status, error=f"The trial job {what}: {error}"[:5000], finished_at=timezone.now()
    )
    experiment_advance(experiment_id=run.experiment_id)


def train_job_ended(*, experiment_id: Any, cancelled: bool, error: str) -> None:
    """The experiment's own job ended without success. Before its first step (no run queued) the
    experiment ends failed or cancelled with the error; after it, the trials carry on."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
        if experiment is None or experiment.status in EXPERIMENT_TERMINAL:
            return
        started = experiment.runs.exists()
        if not started:
            _end_unstarted(experiment, cancelled=cancelled, error=error)
    if started:
        experiment_advance(experiment_id=experiment_id)


def _end_unstarted(experiment: Experiment, *, cancelled: bool, error: str) -> None:
    experiment.status = ExperimentStatus.CANCELLED if cancelled else ExperimentStatus.FAILED
    experiment.error = "" if cancelled else f"The experiment's job failed: {error}"[:5000]
    experiment.finished_at = timezone.now()
    experiment.progress = 100
    experiment.save(update_fields=["status", "error", "finished_at", "progress"])
