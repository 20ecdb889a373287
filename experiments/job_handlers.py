"""Job entry points: they take ids and call one service function (see experiments.coordinator)."""

from __future__ import annotations

from typing import Any

from experiments import coordinator, evaluation
from jobs.models import Job
from jobs.runner import JobCancelled, JobContext, job_handler


@job_handler("experiment.train", queue="training")
def train(job: Job, ctx: JobContext) -> dict[str, Any]:
    # Non-blocking: queue baselines and the first trials, then return. Trials advance the rest.
    return coordinator.experiment_start(experiment_id=job.params["experiment_id"])


@job_handler("experiment.trial", queue="training")
def trial(job: Job, ctx: JobContext) -> dict[str, Any]:
    try:
        return coordinator.trial_execute(run_id=job.params["run_id"], ctx=ctx)
    except JobCancelled:
        coordinator.run_cancelled(job.params["run_id"])
        raise


@job_handler("experiment.diagnose", queue="training")
def diagnose(job: Job, ctx: JobContext) -> dict[str, Any]:
    return evaluation.diagnose_execute(run_id=job.params["run_id"], ctx=ctx)


@job_handler("experiment.evaluate", queue="training")
def evaluate(job: Job, ctx: JobContext) -> dict[str, Any]:
    return evaluation.evaluate_execute(experiment_id=job.params["experiment_id"], ctx=ctx)
