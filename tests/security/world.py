"""One object of every project-owned kind, in a project, built through the services where they
exist (so the rows are realistic) and directly otherwise. Used by the cross-project, role and
schemathesis suites."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from accounts.keys import hash_key, new_key
from datasets.models import Recipe, SqlConnection
from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.models import (
    Alert,
    ApiKey,
    Deployment,
    DeploymentChange,
    ModelVersion,
    MonitoringSnapshot,
    Prediction,
    ReviewItem,
    uuid7,
)
from experiments.models import Experiment, Run
from jobs.models import Job
from mlplatform.artifacts import model_save


@dataclass
class World:
    project: Any
    objects: dict[str, Any] = field(default_factory=dict)
    api_key: str = ""

    def __getitem__(self, name: str) -> Any:
        return self.objects[name]


def loan_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, n).round(1)
    debt = rng.normal(20, 8, n).round(1)
    region = rng.choice(["north", "south", "east"], n)
    approved = np.where(income - debt + rng.normal(0, 8, n) > 28, "approve", "reject")
    return pd.DataFrame({"income": income, "debt": debt, "region": region, "approved": approved})


def build_world(project, owner) -> World:
    world = World(project)
    o = world.objects
    o["dataset"] = dataset_create(project=project, name="loans", created_by=owner)
    frame = loan_frame()
    version = version_create_from_frame(dataset=o["dataset"], frame=frame, created_by=owner, enqueue_profile=False)
    o["dataset_version"] = version_split(version=version, actor=owner, strategy="stratified", column="approved")
    o["recipe"] = Recipe.objects.create(project=project, dataset=o["dataset"], name="basic", steps=[], created_by=owner)
    o["sql_connection"] = SqlConnection.objects.create(
        project=project, name="warehouse", dsn_encrypted="x", created_by=owner
    )
    o["experiment"] = Experiment.objects.create(
        project=project,
        name="first",
        dataset_version=o["dataset_version"],
        target="approved",
        task_type="classification",
        metric="f1",
        created_by=owner,
        status="succeeded",
        progress=100,
    )
    features = ["income", "debt", "region"]
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["income", "debt"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                    ]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame[features], frame["approved"])
    stored = model_save(pipeline, prefix=f"projects/{project.pk}/models")
    o["run"] = Run.objects.create(
        project=project,
        experiment=o["experiment"],
        algorithm="logistic_regression",
        status="succeeded",
        cv_metrics={"f1": {"mean": 0.8, "std": 0.02}},
        score=0.8,
        artifact_key=stored.key,
        artifact_sha256=stored.sha256,
        final_artifact_key=stored.key,
        final_artifact_sha256=stored.sha256,
    )
    o["experiment"].evaluated_run = o["run"]
    o["experiment"].test_evaluation = {
        "metric": "f1",
        "metrics": {"f1": {"value": 0.82, "ci_low": 0.75, "ci_high": 0.88}},
        "feature_columns": features,
        "classes": ["approve", "reject"],
        "n_test": 24,
        "verdict": {"beats_baseline": True, "meets_threshold": True, "text": "ok"},
    }
    o["experiment"].save()
    o["model_version"] = ModelVersion.objects.create(
        project=project,
        version=1,
        run=o["run"],
        experiment=o["experiment"],
        dataset_version=o["dataset_version"],
        task_type="classification",
        target="approved",
        classes=["approve", "reject"],
        artifact_key=stored.key,
        sha256=stored.sha256,
        size_bytes=stored.size,
        input_schema=[
            {"name": "income", "type": "numeric", "min": 0.0, "max": 100.0, "nullable": False},
            {"name": "debt", "type": "numeric", "min": 0.0, "max": 60.0, "nullable": False},
            {"name": "region", "type": "categorical", "categories": ["north", "south", "east"], "nullable": False},
        ],
        metrics={"test": {"f1": {"value": 0.82, "ci_low": 0.75, "ci_high": 0.88}}},
        created_by=owner,
    )
    o["deployment"] = Deployment.objects.create(
        project=project, name="loans-live", model_version=o["model_version"], review_threshold=0.7, created_by=owner
    )
    DeploymentChange.objects.create(
        project=project, deployment=o["deployment"], action="deploy", to_version=o["model_version"], actor=owner
    )
    key = new_key("mlk")
    world.api_key = key
    o["api_key"] = ApiKey.objects.create(
        project=project,
        deployment=o["deployment"],
        name="app",
        prefix=key[:10],
        key_hash=hash_key(key),
        created_by=owner,
    )
    now = timezone.now()
    o["prediction"] = Prediction.objects.create(
        id=uuid7(),
        project=project,
        deployment=o["deployment"],
        model_version=o["model_version"],
        inputs={"income": 40.0, "debt": 30.0, "region": "north"},
        prediction="reject",
        confidence=0.55,
        probabilities={"approve": 0.45, "reject": 0.55},
        status="accepted",
        created_at=now,
    )
    o["review"] = ReviewItem.objects.create(
        project=project,
        deployment=o["deployment"],
        prediction=o["prediction"],
        reason="low_confidence",
        mode="flag",
        confidence=0.55,
        model_label="reject",
    )
    o["alert"] = Alert.objects.create(
        project=project,
        deployment=o["deployment"],
        key="drift:income",
        kind="drift",
        message="income drifted",
        value=0.3,
        threshold=0.2,
    )
    o["snapshot"] = MonitoringSnapshot.objects.create(
        project=project, deployment=o["deployment"], window_start=now, window_end=now, data={}
    )
    o["job"] = Job.objects.create(
        project=project, kind="diagnostics.sleep", params={"seconds": 1}, status="succeeded", progress=100
    )
    return world
