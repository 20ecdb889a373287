"""Real fitted models, dataset versions, deployments and logged predictions for monitoring tests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from datasets.selectors import split_frames
from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.models import Deployment, ModelVersion, Prediction
from deployments.monitoring_reference import reference_stats_build
from mlplatform.artifacts import model_save

NUMERIC = ["x0", "x1", "x2", "x3"]
FEATURES = [*NUMERIC, "color"]
SCHEMA = [{"name": n, "type": "numeric", "nullable": True} for n in NUMERIC] + [
    {"name": "color", "type": "categorical", "categories": ["red", "green", "blue"], "nullable": True}
]


def make_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * (color == "red")
    y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    frame = pd.DataFrame(x, columns=NUMERIC)
    frame["color"] = color
    frame["label"] = y
    return frame


def make_pipeline() -> Pipeline:
    pre = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])]
    )
    return Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))])


def make_deployment(project, user, *, name: str = "scoring", seed: int = 0) -> Deployment:
    frame = make_frame(seed=seed)
    dataset = dataset_create(project=project, name=f"data-{name}", created_by=user)
    dv = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    dv = version_split(version=dv, actor=user, strategy="stratified", column="label", test_size=0.2, val_size=0.2)
    parts = split_frames(dv)
    train = pd.concat([parts.train, parts.val], ignore_index=True)
    pipe = make_pipeline().fit(train[FEATURES], train["label"])
    stored = model_save(pipe, prefix=f"projects/{project.pk}/models")
    proba = pipe.predict_proba(train[FEATURES])
    reference = reference_stats_build(
        frame=train[FEATURES],
        input_schema=SCHEMA,
        predictions=pipe.predict(train[FEATURES]).astype(object),
        confidences=proba.max(axis=1),
    )
    version = (
        ModelVersion.objects.filter(project=project).order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    mv = ModelVersion.objects.create(
        project=project,
        version=version,
        dataset_version=dv,
        name="clf",
        task_type="classification",
        target="label",
        classes=[0, 1],
        artifact_key=stored.key,
        sha256=stored.sha256,
        size_bytes=stored.size,
        input_schema=SCHEMA,
        metrics={"cv": {}, "test": {"accuracy": {"value": 0.85, "ci_low": 0.8, "ci_high": 0.9}}},
        reference_stats=reference,
        created_by=user,
    )
    return Deployment.objects.create(project=project, name=name, model_version=mv, created_by=user)


def log_predictions(
    deployment: Deployment,
    *,
    n: int = 400,
    shift: float = 0.0,
    seed: int = 1,
    minutes_ago: float = 10.0,
    new_color: bool = False,
    label: bool = False,
    flip: bool = False,
) -> list[Prediction]:
    """Predict with the deployed pipeline and log the rows (optionally drifted and labelled)."""
    from mlplatform.artifacts import model_load

    frame = make_frame(n=n, seed=seed)
    frame["x0"] = frame["x0"] + shift
    if new_color:
        frame.loc[frame.index[: n // 3], "color"] = "purple"
    mv = deployment.model_version
    pipe = model_load(mv.artifact_key, mv.sha256)
    preds = pipe.predict(frame[FEATURES])
    conf = pipe.predict_proba(frame[FEATURES]).max(axis=1)
    truth = frame["label"].to_numpy()
    if flip:
        truth = 1 - truth
    now = timezone.now() - timedelta(minutes=minutes_ago)
    rows = [
        Prediction(
            project=deployment.project,
            deployment=deployment,
            model_version=mv,
            inputs={**{c: float(frame.at[i, c]) for c in NUMERIC}, "color": frame.at[i, "color"]},
            prediction=int(preds[i]),
            confidence=float(conf[i]),
            latency_ms=5.0 + i % 10,
            created_at=now + timedelta(milliseconds=i),
            actual=int(truth[i]) if label else None,
            actual_source="feedback" if label else "",
            actual_at=timezone.now() if label else None,
        )
        for i in range(n)
    ]
    return Prediction.objects.bulk_create(rows)
