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
from deployments.models import Deployment, Prediction
from deployments.registry.services import model_version_prepare, model_version_register
from experiments.models import Experiment, Run
from mlplatform.artifacts import model_save

NUMERIC = ["x0", "x1", "x2", "x3"]
FEATURES = [*NUMERIC, "color"]


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
    """A deployment of a real fitted pipeline, registered from its experiment's evaluated run (so a
    retrain can repeat that experiment's configuration) and prepared (schema, drift reference)."""
    frame = make_frame(seed=seed)
    dataset = dataset_create(project=project, name=f"data-{name}", created_by=user)
    dv = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    dv = version_split(version=dv, actor=user, strategy="stratified", column="label", test_size=0.2, val_size=0.2)
    parts = split_frames(dv)
    train = pd.concat([parts.train, parts.val], ignore_index=True)
    pipe = make_pipeline().fit(train[FEATURES], train["label"])
    stored = model_save(pipe, prefix=f"projects/{project.pk}/models")
    experiment = Experiment.objects.create(
        project=project,
        name=f"clf {name}",
        dataset_version=dv,
        target="label",
        task_type="classification",
        metric="accuracy",
        positive_class=1,
        cv_folds=3,
        cv_strategy="stratified",
        algorithms=["logistic"],
        status="succeeded",
        created_by=user,
    )
    run = Run.objects.create(
        project=project,
        experiment=experiment,
        algorithm="logistic",
        params={"C": 1.0},
        status="succeeded",
        score=0.85,
        cv_metrics={"accuracy": {"mean": 0.85, "std": 0.02}},
        final_artifact_key=stored.key,
        final_artifact_sha256=stored.sha256,
    )
    experiment.evaluated_run = run
    experiment.test_evaluation = {
        "metric": "accuracy",
        "metrics": {"accuracy": {"value": 0.85, "ci_low": 0.8, "ci_high": 0.9}},
        "feature_columns": FEATURES,
        "classes": [0, 1],
        "positive_class": 1,
        "n_test": len(frame) // 5,
    }
    experiment.save()
    mv = model_version_register(run=run, actor=user)
    mv = model_version_prepare(version=mv, features=FEATURES)
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
