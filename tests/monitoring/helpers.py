"""Real fitted models, dataset versions, deployments and logged predictions for monitoring tests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from datasets.selectors import locked_test_frame, split_frames
from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.models import Deployment, Prediction
from deployments.registry.services import model_version_prepare, model_version_register
from experiments.ml.metrics import bootstrap_ci
from experiments.ml.training import predict_all
from experiments.models import Experiment, Run
from mlplatform.artifacts import model_save

NUMERIC = ["x0", "x1", "x2", "x3"]
FEATURES = [*NUMERIC, "color"]
TARGET = {"classification": "label", "regression": "amount"}
ALGORITHM = {"classification": ("logistic", {"C": 1.0}), "regression": ("linear", {})}


def make_frame(n: int = 600, seed: int = 0, task: str = "classification", labels: tuple = (0, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    color = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame(x, columns=NUMERIC)
    frame["color"] = color
    if task == "classification":
        logit = 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.5 * (color == "red")
        positive = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
        frame["label"] = positive if tuple(labels) == (0, 1) else np.asarray(labels, dtype=object)[positive]
    else:  # positive amounts far from zero: MAPE is meaningful
        frame["amount"] = 50 + 3 * x[:, 0] - 2 * x[:, 1] + 1.5 * (color == "red") + rng.normal(scale=0.5, size=n)
    return frame


def make_pipeline(task: str = "classification") -> Pipeline:
    pre = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"])]
    )
    model = LogisticRegression(max_iter=500) if task == "classification" else LinearRegression()
    return Pipeline([("pre", pre), ("model", model)])


def _evaluated(dv, pipe, task: str, positive) -> dict:
    """The champion's test metrics as the final evaluation computes them (the one metrics module)."""
    test = locked_test_frame(dv, purpose="final_evaluation")
    pred, proba = predict_all(pipe, test[FEATURES], task)
    classes = np.asarray(pipe.classes_) if task == "classification" else None
    return bootstrap_ci(task, test[TARGET[task]].to_numpy(), pred, proba, classes, n_boot=300, positive=positive)


def make_deployment(
    project,
    user,
    *,
    name: str = "scoring",
    seed: int = 0,
    task: str = "classification",
    metric: str = "accuracy",
    evaluate: bool = False,
    labels: tuple = (0, 1),
) -> Deployment:
    """A deployment of a real fitted pipeline, registered from its experiment's evaluated run (so a
    retrain can repeat that experiment's configuration) and prepared (schema, drift reference).

    The test metrics are fixed (accuracy 0.85, 95% CI 0.8 to 0.9) unless `evaluate`: then they
    are computed on the locked test rows, every metric with its bootstrap interval. Classification:
    `labels` are the classes for 0 and 1; the positive class is the second (whatever its sort).
    """
    target = TARGET[task]
    classification = task == "classification"
    frame = make_frame(seed=seed, task=task, labels=labels)
    positive = labels[1] if classification else None
    dataset = dataset_create(project=project, name=f"data-{name}", created_by=user)
    dv = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    strategy = {"strategy": "stratified", "column": target} if classification else {"strategy": "random"}
    dv = version_split(version=dv, actor=user, test_size=0.2, val_size=0.2, **strategy)
    parts = split_frames(dv)
    train = pd.concat([parts.train, parts.val], ignore_index=True)
    pipe = make_pipeline(task).fit(train[FEATURES], train[target])
    stored = model_save(pipe, prefix=f"projects/{project.pk}/models")
    metrics = (
        _evaluated(dv, pipe, task, positive)
        if evaluate
        else {"accuracy": {"value": 0.85, "ci_low": 0.8, "ci_high": 0.9}}
    )
    algorithm, params = ALGORITHM[task]
    experiment = Experiment.objects.create(
        project=project,
        name=f"model {name}",
        dataset_version=dv,
        target=target,
        task_type=task,
        metric=metric,
        positive_class=positive,
        cv_folds=3,
        cv_strategy="stratified" if classification else "kfold",
        algorithms=[algorithm],
        status="succeeded",
        created_by=user,
    )
    run = Run.objects.create(
        project=project,
        experiment=experiment,
        algorithm=algorithm,
        params=params,
        status="succeeded",
        score=(metrics.get(metric) or {}).get("value"),
        final_artifact_key=stored.key,
        final_artifact_sha256=stored.sha256,
    )
    experiment.evaluated_run = run
    experiment.test_evaluation = {
        "metric": metric,
        "metrics": metrics,
        "feature_columns": FEATURES,
        "classes": sorted(labels) if classification else [],
        "positive_class": positive,
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
