"""Cross-validation, prediction and ensembles: no Django here (metrics: `metrics`; charts of a
run: `diagnostics`).

Every candidate is `Pipeline([("prep", clone(preprocessor)), ("model", estimator)])` on the raw
feature columns, so scaling, imputation and encoding are fitted inside each training fold and
never see the fold's validation rows. Row-level cleaning (`row_filter`) is applied to training
folds only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit
from sklearn.pipeline import Pipeline

from experiments.ml.metrics import compute_metrics

CV_STRATEGIES = ("auto", "kfold", "stratified", "group", "time")


def _final_estimator(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def predict_all(model: Any, X: pd.DataFrame, task_type: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and, for a classifier that has them, class probabilities.

    One pass through the model: for a classifier whose `predict` is the most probable class
    (trees, forests, boosting, linear models, k-NN, naive Bayes, MLP, soft voting, dummy), the
    labels come from the probabilities, as scikit-learn's cached multi-metric scorer does. A hard
    voting ensemble's vote can disagree with its averaged probabilities, so it predicts twice.
    """
    if task_type == "classification" and hasattr(model, "predict_proba"):
        final = _final_estimator(model)
        try:
            proba = model.predict_proba(X)
        except (AttributeError, NotImplementedError):
            proba = None
        if proba is not None:
            if isinstance(final, VotingClassifier) and final.voting != "soft":
                return np.asarray(model.predict(X)), proba
            return np.asarray(model.classes_)[np.argmax(proba, axis=1)], proba
    return np.asarray(model.predict(X)), None


def make_cv(strategy: str, folds: int, y: pd.Series, groups: pd.Series | None, task_type: str, seed: int = 42):
    if strategy == "auto":
        strategy = "stratified" if task_type == "classification" else "kfold"
    if strategy == "stratified":
        if task_type != "classification":
            raise ValueError("Stratified folds need a classification target.")
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if strategy == "kfold":
        return KFold(n_splits=folds, shuffle=True, random_state=seed)
    if strategy == "group":
        if groups is None:
            raise ValueError("Grouped folds need a group column.")
        return GroupKFold(n_splits=folds)
    if strategy == "time":
        return TimeSeriesSplit(n_splits=folds)
    raise ValueError(f"Unknown CV strategy {strategy!r}.")


def build_pipeline(preprocessor: Any, estimator: Any) -> Pipeline:
    return Pipeline([("prep", clone(preprocessor)), ("model", estimator)])


RowFilter = Callable[[pd.DataFrame, pd.Series], "tuple[pd.DataFrame, pd.Series]"]


@dataclass
class CVResult:
    cv_metrics: dict[str, dict[str, float | None]]
    train_metrics: dict[str, float | None]
    fit_seconds: float
    predict_seconds: float
    fold_models: list[Any] = field(default_factory=list)
    classes: list[Any] = field(default_factory=list)


def _mean_std(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals))}


def cross_validate_pipeline(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task_type: str,
    cv: Any,
    groups: pd.Series | None = None,
    row_filter: RowFilter | None = None,
    keep_models: bool = False,
    keep_first_only: bool = False,
    check: Callable[[], None] | None = None,
    positive: Any = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> CVResult:
    """Fit a fresh clone per fold; metrics on each validation fold and on its training fold.

    `on_fold(i, n)` is called before fold i (0-based) of n, so a long trial reports progress.
    """
    classes = np.unique(y) if task_type == "classification" else None
    val_scores: dict[str, list] = {}
    train_scores: dict[str, list] = {}
    fit_s = pred_s = 0.0
    models = []
    n_folds = cv.get_n_splits(X, y, groups) if on_fold else 0
    for fold, (train_idx, val_idx) in enumerate(cv.split(X, y, groups)):
        if check:
            check()
        if on_fold:
            on_fold(fold, n_folds)
        X_tr, y_tr = X.iloc[train_idx], y.iloc[train_idx]
        if row_filter is not None:
            X_tr, y_tr = row_filter(X_tr, y_tr)
        X_va, y_va = X.iloc[val_idx], y.iloc[val_idx]
        model = clone(pipeline)
        t0 = time.perf_counter()
        model.fit(X_tr, y_tr)
        fit_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        pred, proba = predict_all(model, X_va, task_type)
        pred_s += time.perf_counter() - t0
        proba = align_proba(model, proba, classes)
        for k, v in compute_metrics(task_type, y_va.to_numpy(), pred, proba, classes, positive=positive).items():
            val_scores.setdefault(k, []).append(v)
        tr_pred, tr_proba = predict_all(model, X_tr, task_type)
        tr_proba = align_proba(model, tr_proba, classes)
        for k, v in compute_metrics(task_type, y_tr.to_numpy(), tr_pred, tr_proba, classes, positive=positive).items():
            train_scores.setdefault(k, []).append(v)
        if keep_models and not (keep_first_only and models):
            models.append(model)
    return CVResult(
        cv_metrics={k: _mean_std(v) for k, v in val_scores.items()},
        train_metrics={k: _mean_std(v)["mean"] for k, v in train_scores.items()},
        fit_seconds=fit_s,
        predict_seconds=pred_s,
        fold_models=models,
        classes=[] if classes is None else list(classes),
    )


def align_proba(model: Any, proba: np.ndarray | None, classes: np.ndarray | None) -> np.ndarray | None:
    """A fold may miss a rare class: put the model's columns where the full label set has them."""
    if proba is None or classes is None:
        return proba
    model_classes = list(getattr(model, "classes_", []))
    if list(model_classes) == list(classes):
        return proba
    out = np.zeros((proba.shape[0], len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model_classes):
        out[:, index[c]] = proba[:, j]
    return out


def ensemble_pipeline(members: list[tuple[str, Pipeline]], task_type: str) -> Pipeline:
    """A voting model of whole pipelines (each with its own preprocessing), on raw columns."""
    if task_type == "classification":
        soft = all(hasattr(p.named_steps["model"], "predict_proba") for _, p in members)
        model = VotingClassifier(members, voting="soft" if soft else "hard")
    else:
        model = VotingRegressor(members)
    return Pipeline([("model", model)])


def json_label(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)
