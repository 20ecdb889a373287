"""Diagnostics of one run on validation data (never the test set): confusion matrix, ROC and PR
curves, threshold table, residuals, learning curve, permutation importance, worst segments.
No Django here."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from experiments.ml.average_precision import pr_auc_scorer
from experiments.ml.costs import hist_to_json, score_hist
from experiments.ml.metrics import compute_metrics, fast_classification_metrics, positive_index
from experiments.ml.training import align_proba, json_label, predict_all


def _round(values: Any, digits: int = 5) -> list:
    return [None if v is None or not math.isfinite(float(v)) else round(float(v), digits) for v in values]


def _sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def threshold_table(y_true_pos: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    """Precision, recall, F1 and accuracy if the positive class were predicted above each threshold
    (the same definitions as every other metric: `metrics.fast_classification_metrics`)."""
    y = np.asarray(y_true_pos, dtype=np.int64)
    rows = []
    for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
        pred = (scores >= t).astype(np.int64)
        m = fast_classification_metrics(y, pred, None, 2, positive=1)
        rows.append(
            {
                "threshold": float(t),
                "precision": round(m["precision"], 4),
                "recall": round(m["recall"], 4),
                "f1": round(m["f1"], 4),
                "accuracy": round(m["accuracy"], 4),
                "predicted_positive": int(pred.sum()),
            }
        )
    return rows


def segment_errors(
    X: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, task_type: str, *, min_size: int = 10, top: int = 15
) -> list[dict[str, Any]]:
    """The metric per category value or numeric quartile bin, worst segments first."""
    if task_type == "classification":
        err = (np.asarray(y_true) != np.asarray(y_pred)).astype(float)
        metric = "error_rate"
    else:
        err = np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))
        metric = "mae"
    overall = float(err.mean()) if len(err) else 0.0
    rows = []
    for col in X.columns:
        s = X[col]
        try:
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and s.nunique() > 10:
                keys = pd.qcut(s, q=4, duplicates="drop").astype(str)
            elif s.nunique() <= 50:
                keys = s.astype(str)
            else:
                continue
        except (ValueError, TypeError):
            continue
        frame = pd.DataFrame({"k": keys.to_numpy(), "e": err})
        for key, grp in frame.groupby("k", observed=True):
            if len(grp) < min_size:
                continue
            value = float(grp["e"].mean())
            rows.append(
                {
                    "column": str(col),
                    "segment": str(key),
                    "n": len(grp),
                    metric: round(value, 5),
                    "value": round(value, 5),
                    "metric": metric,
                    "vs_overall": round(value - overall, 5),
                }
            )
    rows.sort(key=lambda r: r["vs_overall"], reverse=True)
    return rows[:top]


def _classification_charts(
    y_val: pd.Series, pred: np.ndarray, proba: np.ndarray | None, labels: np.ndarray, positive: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "classes": [json_label(c) for c in labels],
        "confusion_matrix": skm.confusion_matrix(y_val, pred, labels=labels).tolist(),
    }
    if proba is not None and len(labels) == 2:
        j = positive_index(list(labels), positive)
        pos = y_val.to_numpy() == labels[j]
        if pos.any() and (~pos).any():
            fpr, tpr, _ = skm.roc_curve(pos, proba[:, j])
            prec, rec, _ = skm.precision_recall_curve(pos, proba[:, j])
            idx = _sample(len(fpr), 300)
            out["roc"] = {"fpr": _round(fpr[idx]), "tpr": _round(tpr[idx])}
            idx = _sample(len(prec), 300)
            out["pr"] = {"precision": _round(prec[idx]), "recall": _round(rec[idx])}
            out["thresholds"] = threshold_table(pos, proba[:, j])
            # Decisions by cost need every threshold and band on these rows: a 2 x 100 histogram
            # of the positive class's probability gives them exactly (experiments.ml.costs).
            out["score_hist"] = hist_to_json(score_hist(proba[:, j], pos))
            out["positive_class"] = json_label(labels[j])
    return out


def _learning_curve(model: Pipeline, X: pd.DataFrame, y: pd.Series, metric: str, cv: Any) -> dict[str, Any]:
    from sklearn.model_selection import learning_curve

    try:
        scoring = _sk_scoring(metric)
        sizes, tr, va = learning_curve(
            model, X, y, cv=cv or 3, train_sizes=np.linspace(0.2, 1.0, 4), scoring=scoring, n_jobs=1
        )
    except ValueError as exc:
        return {"error": str(exc)}
    sign = -1.0 if isinstance(scoring, str) and scoring.startswith("neg_") else 1.0
    return {
        "metric": metric,
        "train_sizes": [int(s) for s in sizes],
        "train": _round(sign * tr.mean(axis=1)),
        "validation": _round(sign * va.mean(axis=1)),
    }


def _importance(model: Pipeline, X_val: pd.DataFrame, y_val: pd.Series, metric: str) -> dict[str, Any]:
    from sklearn.inspection import permutation_importance

    try:
        imp = permutation_importance(
            model, X_val, y_val, scoring=_sk_scoring(metric), n_repeats=3, random_state=0, n_jobs=1
        )
    except ValueError as exc:
        return {"permutation_importance": [], "permutation_importance_error": str(exc)}
    order = np.argsort(-imp.importances_mean)
    return {
        "permutation_importance": [
            {
                "feature": str(X_val.columns[i]),
                "mean": round(float(imp.importances_mean[i]), 6),
                "std": round(float(imp.importances_std[i]), 6),
            }
            for i in order[:30]
        ]
    }


def diagnostics(
    model: Pipeline,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    *,
    task_type: str,
    primary_metric: str,
    classes: list[Any] | None = None,
    positive: Any = None,
    learning_curve_cv: Any = None,
    progress: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Everything the run page charts, computed on the validation rows with a model fitted on train."""

    def step(pct: int, msg: str) -> None:
        if progress:
            progress(pct, msg)

    out: dict[str, Any] = {"n_val": len(y_val), "n_train": len(y_train)}
    labels = np.asarray(classes) if classes else (np.unique(y_train) if task_type == "classification" else None)
    pred, proba = predict_all(model, X_val, task_type)
    proba = align_proba(model, proba, labels)
    out["metrics"] = compute_metrics(task_type, y_val.to_numpy(), pred, proba, labels, positive=positive)
    step(30, "Curves")
    if task_type == "classification":
        out |= _classification_charts(y_val, pred, proba, labels, positive)
    else:
        idx = _sample(len(pred), 1000)
        actual = y_val.to_numpy(dtype=float)[idx]
        predicted = np.asarray(pred, dtype=float)[idx]
        out["residuals"] = {
            "predicted": _round(predicted),
            "actual": _round(actual),
            "residual": _round(actual - predicted),
        }
    step(50, "Learning curve")
    out["learning_curve"] = _learning_curve(model, X_train, y_train, primary_metric, learning_curve_cv)
    step(70, "Permutation importance")
    out |= _importance(model, X_val, y_val, primary_metric)
    step(90, "Segments")
    out["segments"] = segment_errors(X_val, y_val.to_numpy(), pred, task_type)
    return out


_SK_SCORING = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "precision": "precision_macro",
    "recall": "recall_macro",
    "f1": "f1_macro",
    "roc_auc": "roc_auc_ovr",
    "pr_auc": pr_auc_scorer,
    "log_loss": "neg_log_loss",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "mape": "neg_mean_absolute_percentage_error",
}


def _sk_scoring(metric: str) -> Any:
    return _SK_SCORING[metric]
