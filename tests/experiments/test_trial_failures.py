"""A trial job that never finishes its work (its worker died on every attempt, the sweep gave up on
it, a user cancelled it) leaves its run failed or cancelled, not "running", and the experiment
finishes with the right status: through the runner's own paths (`execute`'s dead letter,
`sweep_stale_jobs`, `job_cancel`), each calling the job kind's on_failure hook."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from experiments import services
from experiments.models import Experiment, Run
from jobs.models import Job
from jobs.runner import execute, job_cancel, sweep_stale_jobs
from jobs.selectors import job_rollup

pytestmark = pytest.mark.django_db


def _experiment(team, version) -> Experiment:
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(
            dataset_version=version, target="diagnosis", cv_folds=3, algorithms=["logistic"],
            search={"method": "random", "n_trials": 0, "ensemble_k": 0},
        ),
    )  # fmt: skip
    assert execute(exp.job_id) == "ran"  # the experiment's own job: queues the two baselines
    assert Job.objects.get(pk=exp.job_id).status == "succeeded"
    exp.refresh_from_db()
    return exp


def _dies_every_time(job: Job) -> None:
    """The state a job is in when its worker was killed on its last allowed attempt."""
    Job.objects.filter(pk=job.pk).update(
        status="running",
        attempts=job.max_attempts,
        heartbeat_at=timezone.now() - timedelta(hours=1),
        claim_token=None,
    )


def test_a_trial_dead_lettered_by_the_runner_fails_its_run_and_the_experiment_finishes(team, cancer_version):
    exp = _experiment(team, cancer_version)
    first, second = exp.runs.order_by("trial_number")
    assert execute(first.job_id) == "ran"  # one baseline trains for real, through its job
    assert Experiment.objects.get(pk=exp.pk).status == "running"
    # The other's worker died on every attempt: the next delivery finds its attempts spent.
    Job.objects.filter(pk=second.job_id).update(status="queued", attempts=second.job.max_attempts)
    assert execute(second.job_id) == "done"
    job = Job.objects.get(pk=second.job_id)
    assert job.status == "failed" and "Gave up" in job.error
    second.refresh_from_db()
    assert second.status == "failed" and "Gave up" in second.error and second.finished_at is not None
    exp.refresh_from_db()
    assert exp.status == "succeeded" and exp.progress == 100 and exp.finished_at is not None
    # The coordinator's rolled-up status: no child still active, so not "running" either.
    assert job_rollup(Job.objects.filter(pk=exp.job_id)).get().effective_status == "succeeded"


def test_every_trial_lost_to_the_sweep_fails_the_experiment(team, cancer_version):
    exp = _experiment(team, cancer_version)
    for run in exp.runs.all():
        _dies_every_time(run.job)
    assert sweep_stale_jobs()["failed"] == 2
    assert set(Run.objects.filter(experiment=exp).values_list("status", flat=True)) == {"failed"}
    assert all("stopped answering" in r.error for r in Run.objects.filter(experiment=exp))
    exp.refresh_from_db()
    assert exp.status == "failed" and "Every trial failed" in exp.error and exp.progress == 100


def test_a_cancelled_trial_is_a_cancelled_run_and_the_rest_carry_on(team, cancer_version):
    exp = _experiment(team, cancer_version)
    first, second = exp.runs.order_by("trial_number")
    job_cancel(job=second.job, actor=team.owner)  # queued: cancelled at once
    second.refresh_from_db()
    assert second.status == "cancelled"
    assert Experiment.objects.get(pk=exp.pk).status == "running"  # the first still has to run
    assert execute(first.job_id) == "ran"
    exp.refresh_from_db()
    assert exp.status == "succeeded"


def test_an_experiment_whose_own_job_dies_before_its_first_step_is_failed(team, cancer_version):
    exp = services.experiment_create(
        project=team.project,
        created_by=team.owner,
        config=services.ExperimentConfig(
            dataset_version=cancer_version, target="diagnosis", cv_folds=3, algorithms=["logistic"],
            search={"method": "random", "n_trials": 0, "ensemble_k": 0},
        ),
    )  # fmt: skip
    assert exp.status == "queued" and exp.job_id
    Job.objects.filter(pk=exp.job_id).update(status="queued", attempts=exp.job.max_attempts)
    execute(exp.job_id)
    exp.refresh_from_db()
    assert exp.status == "failed" and "Gave up" in exp.error and not exp.runs.exists()
