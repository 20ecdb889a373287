"""The demo's whole loop, run against a live worker: data, experiment, evaluation, deployment,
review policy, simulated traffic with drift and ground truth, a snapshot. Every step goes
through the same services as the UI and the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from datasets.models import DatasetVersion, VersionStatus
from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.management.commands.simulate_traffic import simulate
from deployments.models import Deployment, ModelVersion, ReferenceStatus
from deployments.registry.services import model_version_register
from deployments.reviews.services import review_policy_update
from deployments.rollout.services import deployment_create
from deployments.serving.services import api_key_create
from experiments.models import Experiment, Run
from experiments.selectors import best_candidate
from experiments.services import ExperimentConfig, diagnose_request, evaluate_request, experiment_create
from projects.models import Project

DEMO_PREDICTIONS = 24 * 200  # a day of traffic, backfilled as 24 hourly snapshots


def loan_applications(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Messy loan data: missing values, duplicates, categories, dates, an outlier and a capped column."""
    rng = np.random.default_rng(seed)
    income = np.round(rng.lognormal(10.8, 0.45, n), -2)
    debt = np.round(np.clip(rng.normal(0.3, 0.15, n), 0, None) * income, -1)
    age = rng.integers(19, 75, n)
    years = np.clip(rng.normal(6, 5, n), 0, 40).round(1)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.3, 0.25, 0.15])
    home = rng.choice(["rent", "own", "mortgage"], n)
    amount = np.round(rng.uniform(1000, 40000, n), -2)
    history = np.clip(rng.normal(650, 70, n), 300, 850).round()
    score = (history - 650) / 70 + (income - 2.2 * debt) / 30000 + 0.08 * years - amount / 20000
    score += np.where(home == "own", 0.4, 0.0) + rng.normal(0, 0.6, n)
    frame = pd.DataFrame(
        {
            "income": income,
            "debt": debt,
            "age": age,
            "employment_years": years,
            "region": region,
            "home_ownership": home,
            "loan_amount": amount,
            "credit_history": history,
            "applied_on": pd.date_range("2024-01-01", periods=n, freq="3h").strftime("%Y-%m-%d"),
            "approved": np.where(score > 0.2, "approve", "reject"),
        }
    )
    frame.loc[rng.random(n) < 0.06, "employment_years"] = np.nan
    frame.loc[rng.random(n) < 0.03, "home_ownership"] = None
    frame["credit_history"] = frame["credit_history"].clip(upper=800)  # capped by the bureau export
    frame.loc[5, "income"] = 9_900_000  # a typo: an outlier
    return pd.concat([frame, frame.sample(40, random_state=1)], ignore_index=True)  # duplicates


def _wait(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = get()
        if done(obj):
            return obj
        time.sleep(1)
    raise TimeoutError(f"The demo gave up waiting for {what}.")


def _data_and_model(*, project: Project, owner: Any, log: Callable[[str], None], timeout: float) -> Any:
    """A dataset, its split, an experiment, its one final evaluation: the run to register."""
    log("demo: loading loan applications")
    dataset = dataset_create(
        project=project,
        name="Loan applications",
        created_by=owner,
        description="Two years of applications with the officers' decisions (generated).",
    )
    version = version_create_from_frame(dataset=dataset, frame=loan_applications(), created_by=owner)
    version = _wait(
        lambda: DatasetVersion.objects.get(pk=version.pk),
        lambda v: v.status != VersionStatus.PROCESSING,
        timeout,
        "the profile",
    )
    version = version_split(
        version=version, actor=owner, strategy="stratified", column="approved", test_size=0.2, val_size=0.2, seed=42
    )
    log("demo: training baselines and candidates")
    experiment = experiment_create(
        project=project,
        created_by=owner,
        config=ExperimentConfig(
            dataset_version=version,
            target="approved",
            name="First model selection",
            cv_folds=3,
            algorithms=["random_forest", "hist_gradient_boosting"],
            search={"method": "random", "n_trials": 3},
        ),
    )
    experiment = _wait(
        lambda: Experiment.objects.get(pk=experiment.pk),
        lambda e: e.status in ("succeeded", "failed", "cancelled"),
        timeout,
        "training",
    )
    best = best_candidate(experiment)  # what the leaderboard ranks first: baselines are references
    log(f"demo: evaluating {best.algorithm} once on the locked test set")
    evaluate_request(experiment=experiment, run=best, actor=owner)
    _wait(
        lambda: Experiment.objects.get(pk=experiment.pk),
        lambda e: e.test_evaluation is not None,
        timeout,
        "the final evaluation",
    )
    # Its diagnostics (learning curve, validation thresholds): the deployment's decision-threshold
    # card reads the validation table from them. A job of its own; nothing waits for it.
    diagnose_request(run=best, actor=owner)
    return Run.objects.select_related("experiment").get(pk=best.pk)


def run_loop(*, project: Project, owner: Any, log: Callable[[str], None] = print, timeout: float = 900) -> None:
    if Deployment.objects.filter(project=project).exists():
        return
    run = _data_and_model(project=project, owner=owner, log=log, timeout=timeout)
    registered = model_version_register(run=run, actor=owner)
    version_model = _wait(
        lambda: ModelVersion.objects.get(pk=registered.pk),
        lambda v: v.reference_status != ReferenceStatus.PENDING,
        timeout,
        "the model version's preparation (input schema, drift reference)",
    )
    deployment = deployment_create(
        project=project,
        actor=owner,
        name="loan-decisions",
        model_version=version_model,
        review_threshold=0.75,
        justification="Demo: deployed to show the loop even if the generated data misses the bar.",
    )
    # Confident predictions on inputs unlike the training data are reviewed too (1% false alarms):
    # the drifted traffic below puts some in the queue with the features that made them novel.
    review_policy_update(
        deployment=deployment,
        actor=owner,
        review_mode="hold",
        review_policy={"sample_rate": 0.05, "novelty_rate": 0.01},
    )
    api_key_create(deployment=deployment, actor=owner, name="loan-app")
    log("demo: sending a day of traffic with drift and delayed ground truth, one snapshot per hour")
    # 200 predictions an hour: each hourly window holds enough rows for a drift verdict
    # (min_samples 100), so the monitoring page's time charts show the drift growing over the day.
    simulate(
        deployment=Deployment.objects.get(pk=deployment.pk),
        n=DEMO_PREDICTIONS,
        drift=0.8,
        hours=24,
        feedback_delay_minutes=120,
        label_rate=0.7,
        seed=1,
        snapshots=True,
    )
    log("demo: ready")
