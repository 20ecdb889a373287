"""Registered models for the deployments tests: real data, a real fitted pipeline, skops files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.ml import scoring
from deployments.registry.services import model_version_prepare, model_version_register
from experiments.models import Experiment, Run
from mlplatform.artifacts import model_save

FEATURES = ["age", "income", "score", "color", "member"]


def loan_frame(n: int = 300, seed: int = 0, task: str = "classification") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    score = rng.uniform(0, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    member = rng.random(n) < 0.4
    logit = (income - 50_000) / 10_000 + 2 * (score - 0.5) + (color == "red") * 1.0
    frame = pd.DataFrame({"age": age, "income": income, "score": score, "color": color, "member": member})
    if task == "classification":
        frame["approved"] = np.where(logit + rng.normal(0, 0.5, n) > 0, "yes", "no")
    else:
        frame["amount"] = (income * 0.1 + score * 1000 + rng.normal(0, 100, n)).round(2)
    return frame


def fitted_pipeline(frame: pd.DataFrame, target: str, task: str, seed: int = 0):
    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["age", "income", "score", "member"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    est = (
        HistGradientBoostingClassifier(max_iter=15, random_state=seed)
        if task == "classification"
        else HistGradientBoostingRegressor(max_iter=15, random_state=seed)
    )
    pipe = Pipeline([("pre", pre), ("model", est)])
    pipe.fit(frame[FEATURES], frame[target])
    return pipe


def make_evaluated_run(project, user, *, seed: int = 0, task: str = "classification", f1: float = 0.85, ci=(0.8, 0.9)):
    """An experiment whose final evaluation chose a run with a real refit pipeline on disk."""
    frame = loan_frame(300, seed, task)
    target = "approved" if task == "classification" else "amount"
    dataset = dataset_create(project=project, name=f"loans-{seed}-{task}", created_by=user)
    dv = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    dv = version_split(version=dv, actor=user, strategy="random", seed=seed)
    pipe = fitted_pipeline(frame, target, task, seed)
    stored = model_save(pipe, prefix=f"projects/{project.pk}/models")
    metric = "f1" if task == "classification" else "rmse"
    exp = Experiment.objects.create(
        project=project,
        name=f"exp {seed}",
        dataset_version=dv,
        target=target,
        task_type=task,
        metric=metric,
        created_by=user,
    )
    run = Run.objects.create(
        project=project,
        experiment=exp,
        algorithm="hist_gradient_boosting",
        params={"max_iter": 15},
        status="succeeded",
        cv_metrics={metric: {"mean": f1, "std": 0.02}},
        score=f1,
        final_artifact_key=stored.key,
        final_artifact_sha256=stored.sha256,
    )
    exp.evaluated_run = run
    exp.test_evaluation = {
        "metric": metric,
        "metrics": {metric: {"value": f1, "ci_low": ci[0], "ci_high": ci[1]}},
        "feature_columns": FEATURES,
        "classes": ["no", "yes"] if task == "classification" else [],
        "positive_class": "yes" if task == "classification" else None,
        "n_test": 60,
        "verdict": "beats the baseline",
    }
    exp.save()
    return run


@pytest.fixture
def go_project(team):
    team.project.decision = "go"
    team.project.save()
    return team.project


def register_prepared(run, actor):
    """Register `run`, then build its schema and reference as its `model_version.prepare` job does
    (these tests run no worker: the job stays queued; its work is this same service)."""
    version = model_version_register(run=run, actor=actor)
    return model_version_prepare(version=version, features=FEATURES)


@pytest.fixture
def registered(team, go_project):
    """register(seed=0, f1=0.85) -> a ready ModelVersion of the team's project."""

    def make(**kwargs):
        run = make_evaluated_run(go_project, team.owner, **kwargs)
        return register_prepared(run, team.owner)

    return make


@pytest.fixture
def deployment(team, registered):
    from deployments.rollout.services import deployment_create

    version = registered()
    return deployment_create(project=team.project, actor=team.editor, name="loans", model_version=version)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    scoring.model_cache_clear()
    yield
