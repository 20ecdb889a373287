"""Fixtures: small split dataset versions (bundled scikit-learn data, a few hundred rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from datasets.services import dataset_create, version_create_from_frame, version_split


def cancer_frame(n: int = 240) -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, [0, 1, 2, 7, 20, 21, 27]].copy()
    frame.columns = ["radius", "texture", "perimeter", "concave_points", "worst_radius", "worst_texture", "worst_cp"]
    frame["diagnosis"] = np.where(data.target == 1, "benign", "malignant")
    rng = np.random.default_rng(0)
    frame["clinic"] = rng.choice(["north", "south", "east"], size=len(frame))
    return frame.sample(n=n, random_state=0).reset_index(drop=True)


def diabetes_frame(n: int = 240) -> pd.DataFrame:
    frame = load_diabetes(as_frame=True).frame.iloc[:n].copy()
    frame["sex"] = np.where(frame["sex"] > 0, "m", "f")
    return frame


def make_version(project, user, frame: pd.DataFrame, target: str, *, split: bool = True, strategy: str | None = None):
    dataset = dataset_create(project=project, name=f"data-{target}", created_by=user)
    version = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    if split:
        strategy = strategy or ("stratified" if frame[target].dtype == object else "random")
        version = version_split(
            version=version,
            actor=user,
            strategy=strategy,
            column=target if strategy == "stratified" else None,
            test_size=0.2,
            val_size=0.2,
        )
    return version


@pytest.fixture
def cancer_version(team):
    return make_version(team.project, team.owner, cancer_frame(), "diagnosis")


@pytest.fixture
def regression_team(team):
    team.project.task_type = "regression"
    team.project.success_metric = "rmse"
    team.project.success_threshold = 60.0
    team.project.baseline_score = 75.0
    team.project.save()
    return team


@pytest.fixture
def diabetes_version(regression_team):
    return make_version(regression_team.project, regression_team.owner, diabetes_frame(), "target")


FAST_SEARCH = {
    "method": "random",
    "n_trials": 2,
    "ensemble_k": 2,
    "spaces": {
        "random_forest": {
            "n_estimators": {"type": "int", "low": 5, "high": 10},
            "max_depth": {"type": "int", "low": 2, "high": 4},
        }
    },
}
