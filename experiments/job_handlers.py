"""Job entry points: they take ids and call one service function (see experiments.coordinator)."""

from __future__ import annotations

from typing import Any

from experiments import coordinator, evaluation
from jobs.models import Job, JobStatus
from jobs.runner import JobCancelled, JobContext, job_handler


def _train_ended(job: Job, error: str) -> None:
    """The runner's on_failure hook: an experiment never stays queued after its job is gone."""
    coordinator.train_job_ended(
        experiment_id=job.params.get("experiment_id"), cancelled=job.status == JobStatus.CANCELLED, error=error
    )


def _trial_ended(job: Job, error: str) -> None:
    """The runner's on_failure hook: the run ends failed (or cancelled), the experiment moves on."""
    coordinator.trial_job_ended(
        run_id=job.params.get("run_id"), cancelled=job.status == JobStatus.CANCELLED, error=error
    )


@job_handler("experiment.train", queue="training", on_failure=_train_ended)
def train(job: Job, ctx: JobContext) -> dict[str, Any]:
    # Non-blocking: queue baselines and the first trials, then return. Trials advance the rest.
    return coordinator.experiment_start(experiment_id=job.params["experiment_id"])


@job_handler("experiment.trial", queue="training", on_failure=_trial_ended)
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
