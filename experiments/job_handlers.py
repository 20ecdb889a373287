"""Job entry points: they take ids and call a service (see experiments.services for the design)."""

from __future__ import annotations

from typing import Any

from experiments import services
from jobs.models import Job
from jobs.runner import JobCancelled, JobContext, job_handler


@job_handler("experiment.train", queue="training")
def train(job: Job, ctx: JobContext) -> dict[str, Any]:
    # Non-blocking: queue baselines and the first trials, then return. Trials advance the rest.
    status = services.experiment_advance(experiment_id=job.params["experiment_id"])
    # The trials this job started: its rolled-up progress counts them (jobs.selectors).
    experiment = services.Experiment.objects.get(pk=job.params["experiment_id"])
    return {"status": status, "children_expected": services.planned_total(experiment)}


@job_handler("experiment.trial", queue="training")
def trial(job: Job, ctx: JobContext) -> dict[str, Any]:
    try:
        return services.trial_execute(run_id=job.params["run_id"], ctx=ctx)
    except JobCancelled:
        services.run_cancelled(job.params["run_id"])
        raise


@job_handler("experiment.diagnose", queue="training")
def diagnose(job: Job, ctx: JobContext) -> dict[str, Any]:
    return services.diagnose_execute(run_id=job.params["run_id"], ctx=ctx)


@job_handler("experiment.evaluate", queue="training")
def evaluate(job: Job, ctx: JobContext) -> dict[str, Any]:
    return services.evaluate_execute(experiment_id=job.params["experiment_id"], ctx=ctx)
