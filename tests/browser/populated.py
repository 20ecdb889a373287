"""A project with something on every page, built through the services with the real worker:
messy data profiled and split, an experiment with a recipe, diagnostics, the final evaluation,
a registered model, a deployment with predictions, review items (one decided), a snapshot.

Shared by the crawl (CSP, console errors, screenshots) and the browser tests that need a
populated project. Small data: about a minute on a shared two-core machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tests.conftest import wait_for_job

MESSY_REGIONS = {
    "North": 90,
    "north": 30,
    "north ": 12,
    "South": 80,
    "south": 25,
    " SOUTH": 8,
    "Soutth": 3,
    "East": 60,
    "West": 52,
}


def messy_loans(n: int = 360, seed: int = 3) -> pd.DataFrame:
    """Loan applications with the mess a person meets: one region spelled six ways, missing
    values, an id column, a date column, duplicate rows."""
    rng = np.random.default_rng(seed)
    total = sum(MESSY_REGIONS.values())
    regions = [r for r, k in MESSY_REGIONS.items() for _ in range(max(2, round(k * n / total)))]
    region = rng.permutation(np.resize(np.array(regions, dtype=object), n))
    income = np.round(rng.lognormal(10.6, 0.35, n), -2)
    debt = np.round(np.clip(rng.normal(0.3, 0.12, n), 0, None) * income, -1)
    age = rng.integers(19, 75, n).astype(float)
    home = rng.choice(["rent", "own", "mortgage"], n)
    score = (income - 2.5 * debt) / 15000 + np.where(home == "own", 0.5, 0) + rng.normal(0, 0.5, n)
    score += np.where(pd.Series(region).str.strip().str.lower().str.startswith("sou"), 0.4, 0)
    frame = pd.DataFrame(
        {
            "application_id": np.arange(100_000, 100_000 + n),
            "income": income,
            "debt": debt,
            "age": age,
            "region": region,
            "home": home,
            "applied_on": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "approved": np.where(score > np.median(score), "approve", "reject"),
        }
    )
    frame.loc[rng.random(n) < 0.07, "age"] = np.nan
    frame.loc[rng.random(n) < 0.04, "home"] = None
    return pd.concat([frame, frame.iloc[:6]], ignore_index=True)


@dataclass
class Populated:
    project: Any
    objects: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.objects[name]


def _wait(get, done, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = get()
        if done(obj):
            return obj
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def _ready(version, timeout: float = 90):
    from datasets.models import DatasetVersion

    return _wait(
        lambda: DatasetVersion.objects.get(pk=version.pk), lambda v: v.status != "processing", timeout, "a profile"
    )


def build(team) -> Populated:
    from datasets import recipe_ui
    from datasets.services import (
        dataset_create,
        recipe_save,
        version_create_from_frame,
        version_set_target,
        version_split,
    )
    from deployments.management.commands.simulate_traffic import simulate
    from deployments.models import ReferenceStatus, ReviewItem
    from deployments.monitoring.services.snapshots import snapshot_compute
    from deployments.registry.services import model_version_register
    from deployments.reviews.services import review_decide
    from deployments.rollout.services import deployment_create
    from deployments.serving.services import api_key_create
    from experiments import selectors
    from experiments.models import Experiment
    from experiments.services import ExperimentConfig, diagnose_request, evaluate_request, experiment_create
    from projects.services import project_decide

    project, owner = team.project, team.owner
    project_decide(project=project, actor=owner, decision="go", rationale="History exists; faster decisions matter.")
    out = Populated(project)
    dataset = dataset_create(project=project, name="Loan applications", created_by=owner)
    version = _ready(version_create_from_frame(dataset=dataset, frame=messy_loans(), created_by=owner))
    version = _ready(version_set_target(version=version, target="approved", actor=owner))
    assert version.status == "ready", version.error
    version = version_split(version=version, actor=owner, strategy="stratified", column="approved", seed=1)
    auto = recipe_ui.automatic(version, target="approved")
    recipe = recipe_save(
        project=project, name="Loans, cleaned", steps=[s["step"] for s in auto["steps"]], actor=owner, dataset=dataset
    )
    experiment = experiment_create(
        project=project,
        created_by=owner,
        config=ExperimentConfig(
            dataset_version=version,
            target="approved",
            name="First model selection",
            recipe=recipe,
            cv_folds=3,
            algorithms=["decision_tree", "random_forest"],
            search={
                "method": "random",
                "n_trials": 2,
                "ensemble_k": 2,
                "spaces": {"random_forest": {"n_estimators": {"type": "int", "low": 20, "high": 40}}},
            },
        ),
    )
    experiment = _wait(
        lambda: Experiment.objects.get(pk=experiment.pk),
        lambda e: e.status in ("succeeded", "failed", "cancelled"),
        240,
        "training",
    )
    assert experiment.status == "succeeded", experiment.error
    best = selectors.best_candidate(experiment)
    run = diagnose_request(run=best, actor=owner)
    wait_for_job(run.diagnostics_job_id, timeout=300)  # a shared, loaded machine
    experiment = evaluate_request(experiment=experiment, run=best, actor=owner)
    wait_for_job(experiment.evaluation_job_id, timeout=300)
    best.refresh_from_db()
    model_version = model_version_register(run=best, actor=owner)
    wait_for_job(model_version.prepare_job.pk, timeout=120)  # its input schema and drift reference
    model_version.refresh_from_db()
    assert model_version.reference_status == ReferenceStatus.READY, model_version.reference_error
    deployment = deployment_create(
        project=project,
        actor=owner,
        name="loan-decisions",
        model_version=model_version,
        review_threshold=0.8,
        justification="Browser tests deploy whatever the small data gives.",
    )
    api_key_create(deployment=deployment, actor=owner, name="loan-app")
    simulate(deployment=deployment, n=80, drift=0.6, hours=6, feedback_delay_minutes=30, label_rate=0.6, seed=2)
    snapshot_compute(deployment=deployment, window_minutes=12 * 60)
    items = list(ReviewItem.objects.filter(deployment=deployment, status="pending").order_by("pk"))
    assert len(items) >= 3, "the review threshold should send several predictions to the queue"
    review_decide(item=items[0], actor=team.reviewer, action="approve", comment="Looks right.")
    out.objects.update(
        dataset=dataset,
        version=version,
        recipe=recipe,
        experiment=experiment,
        best=best,
        baseline=experiment.runs.filter(kind="baseline").first(),
        model_version=model_version,
        deployment=deployment,
        review=items[1],
        fresh=items[2],  # opened by nobody before the decision panel check
        decided=items[0],
        job=experiment.job,
    )
    return out
