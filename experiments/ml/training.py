"""Cross-validation, metrics, ensembles, diagnostics and the bootstrap: no Django here.

Every candidate is `Pipeline([("prep", clone(preprocessor)), ("model", estimator)])` on the raw
feature columns, so scaling, imputation and encoding are fitted inside each training fold and
never see the fold's validation rows. Row-level cleaning (`row_filter`) is applied to training
folds only.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.ensemble import VotingClassifier, VotingRegressor
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit
from sklearn.pipeline import Pipeline

CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
REGRESSION_METRICS = ["rmse", "mae", "r2", "mape"]
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
}
CV_STRATEGIES = ("auto", "kfold", "stratified", "group", "time")


def metric_names(task_type: str) -> list[str]:
    return CLASSIFICATION_METRICS if task_type == "classification" else REGRESSION_METRICS


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _final_estimator(model: Any) -> Any:
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def predict_all(model: Any, X: pd.DataFrame, task_type: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and, for a classifier that has them, class probabilities.

    One pass through the model: for a classifier whose `predict` is the most probable class
    (trees, forests, boosting, linear models, k-NN, naive Bayes, MLP, soft voting, dummy), the
    labels come from the probabilities, as scikit-learn's cached multi-metric scorer does.
    SVC's Platt-scaled probabilities can disagree with its decision function, so it predicts twice.
    """
    if task_type == "classification" and hasattr(model, "predict_proba"):
        final = _final_estimator(model)
        try:
            proba = model.predict_proba(X)
        except (AttributeError, NotImplementedError):
            proba = None
        if proba is not None:
            from sklearn.svm import SVC

            if isinstance(final, SVC) or (isinstance(final, VotingClassifier) and final.voting != "soft"):
                return np.asarray(model.predict(X)), proba
            return np.asarray(model.classes_)[np.argmax(proba, axis=1)], proba
    return np.asarray(model.predict(X)), None


def compute_metrics(
    task_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Every metric of the task type. A metric that cannot be computed is None (not 0)."""
    y_true = np.asarray(y_true)
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task_type == "regression":
            y_true = y_true.astype(float)
            y_pred = np.asarray(y_pred, dtype=float)
            out["rmse"] = _finite(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
            out["mae"] = _finite(skm.mean_absolute_error(y_true, y_pred))
            out["r2"] = _finite(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else None
            nonzero = np.abs(y_true) > 1e-12
            out["mape"] = (
                _finite(np.mean(np.abs((y_true - y_pred)[nonzero] / y_true[nonzero]))) if nonzero.any() else None
            )
            return out
        labels = np.asarray(classes) if classes is not None else np.unique(np.concatenate([y_true, y_pred]))
        index = {c: i for i, c in enumerate(labels.tolist())}
        try:
            y_idx = np.fromiter((index[v] for v in y_true.tolist()), dtype=np.int64, count=len(y_true))
            p_idx = np.fromiter((index[v] for v in np.asarray(y_pred).tolist()), dtype=np.int64, count=len(y_true))
        except KeyError:
            # A label the model never saw in training (a rare class absent from the training
            # rows): count it, without probabilities for it.
            extra = sorted(set(y_true.tolist()) | set(np.asarray(y_pred).tolist()) - set(index), key=str)
            for v in extra:
                index.setdefault(v, len(index))
            y_idx = np.fromiter((index[v] for v in y_true.tolist()), dtype=np.int64, count=len(y_true))
            p_idx = np.fromiter((index[v] for v in np.asarray(y_pred).tolist()), dtype=np.int64, count=len(y_true))
            return fast_classification_metrics(y_idx, p_idx, None, len(index))
        if len(np.unique(y_idx)) < 2:
            proba = None  # ROC AUC and log loss need both classes present
        return fast_classification_metrics(y_idx, p_idx, proba, len(labels))


def reference_classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, labels: np.ndarray
) -> dict[str, float | None]:
    """The same metrics through scikit-learn (the fast path is tested against this)."""
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binary = len(labels) == 2
        kw: dict[str, Any] = {"average": "binary", "pos_label": labels[1]} if binary else {"average": "macro"}
        out["accuracy"] = _finite(skm.accuracy_score(y_true, y_pred))
        out["balanced_accuracy"] = _finite(skm.balanced_accuracy_score(y_true, y_pred))
        out["precision"] = _finite(
            skm.precision_score(y_true, y_pred, zero_division=0, labels=labels if not binary else None, **kw)
        )
        out["recall"] = _finite(
            skm.recall_score(y_true, y_pred, zero_division=0, labels=labels if not binary else None, **kw)
        )
        out["f1"] = _finite(skm.f1_score(y_true, y_pred, zero_division=0, labels=labels if not binary else None, **kw))
        out["roc_auc"] = None
        out["log_loss"] = None
        if proba is not None and len(np.unique(y_true)) > 1:
            try:
                if binary:
                    out["roc_auc"] = _finite(skm.roc_auc_score(y_true == labels[1], proba[:, 1]))
                else:
                    out["roc_auc"] = _finite(
                        skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
                    )
            except ValueError:
                out["roc_auc"] = None
            try:
                out["log_loss"] = _finite(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels))
            except ValueError:
                out["log_loss"] = None
    return out


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
        proba = _align_proba(model, proba, classes)
        for k, v in compute_metrics(task_type, y_va.to_numpy(), pred, proba, classes).items():
            val_scores.setdefault(k, []).append(v)
        tr_pred, tr_proba = predict_all(model, X_tr, task_type)
        tr_proba = _align_proba(model, tr_proba, classes)
        for k, v in compute_metrics(task_type, y_tr.to_numpy(), tr_pred, tr_proba, classes).items():
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


def _align_proba(model: Any, proba: np.ndarray | None, classes: np.ndarray | None) -> np.ndarray | None:
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


# --- diagnostics (validation data only) -------------------------------------------------------


def _round(values: Any, digits: int = 5) -> list:
    return [None if v is None or not math.isfinite(float(v)) else round(float(v), digits) for v in values]


def _sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def threshold_table(y_true_pos: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    rows = []
    for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
        pred = scores >= t
        tp = int(np.sum(pred & y_true_pos))
        fp = int(np.sum(pred & ~y_true_pos))
        fn = int(np.sum(~pred & y_true_pos))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        acc = float(np.mean(pred == y_true_pos))
        rows.append(
            {
                "threshold": float(t),
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
                "accuracy": round(acc, 4),
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
    learning_curve_cv: Any = None,
    progress: Callable[[int, str], None] | None = None,
) -> dict[str, Any]:
    """Everything the run page charts, computed on the validation rows with a model fitted on train."""
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import learning_curve

    def step(pct: int, msg: str) -> None:
        if progress:
            progress(pct, msg)

    out: dict[str, Any] = {"n_val": len(y_val), "n_train": len(y_train)}
    labels = np.asarray(classes) if classes else (np.unique(y_train) if task_type == "classification" else None)
    pred, proba = predict_all(model, X_val, task_type)
    proba = _align_proba(model, proba, labels)
    out["metrics"] = compute_metrics(task_type, y_val.to_numpy(), pred, proba, labels)
    step(30, "Curves")
    if task_type == "classification":
        cm = skm.confusion_matrix(y_val, pred, labels=labels)
        out["classes"] = [json_label(c) for c in labels]
        out["confusion_matrix"] = cm.tolist()
        if proba is not None and len(labels) == 2:
            pos = y_val.to_numpy() == labels[1]
            if pos.any() and (~pos).any():
                fpr, tpr, _ = skm.roc_curve(pos, proba[:, 1])
                prec, rec, _ = skm.precision_recall_curve(pos, proba[:, 1])
                idx = _sample(len(fpr), 300)
                out["roc"] = {"fpr": _round(fpr[idx]), "tpr": _round(tpr[idx])}
                idx = _sample(len(prec), 300)
                out["pr"] = {"precision": _round(prec[idx]), "recall": _round(rec[idx])}
                out["thresholds"] = threshold_table(pos, proba[:, 1])
                out["positive_class"] = json_label(labels[1])
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
    try:
        scoring = _sk_scoring(primary_metric)
        sizes, tr, va = learning_curve(
            model,
            X_train,
            y_train,
            cv=learning_curve_cv or 3,
            train_sizes=np.linspace(0.2, 1.0, 4),
            scoring=scoring,
            n_jobs=1,
        )
        sign = -1.0 if scoring.startswith("neg_") else 1.0
        out["learning_curve"] = {
            "metric": primary_metric,
            "train_sizes": [int(s) for s in sizes],
            "train": _round(sign * tr.mean(axis=1)),
            "validation": _round(sign * va.mean(axis=1)),
        }
    except ValueError as exc:
        out["learning_curve"] = {"error": str(exc)}
    step(70, "Permutation importance")
    try:
        imp = permutation_importance(
            model, X_val, y_val, scoring=_sk_scoring(primary_metric), n_repeats=3, random_state=0, n_jobs=1
        )
        order = np.argsort(-imp.importances_mean)
        out["permutation_importance"] = [
            {
                "feature": str(X_val.columns[i]),
                "mean": round(float(imp.importances_mean[i]), 6),
                "std": round(float(imp.importances_std[i]), 6),
            }
            for i in order[:30]
        ]
    except ValueError as exc:
        out["permutation_importance"] = []
        out["permutation_importance_error"] = str(exc)
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
    "log_loss": "neg_log_loss",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "mape": "neg_mean_absolute_percentage_error",
}


def _sk_scoring(metric: str) -> str:
    return _SK_SCORING[metric]


def json_label(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


# --- final evaluation -------------------------------------------------------------------------


def _auc_binary(pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fast_classification_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, k: int) -> dict:
    """The classification metrics from label indices (0..k-1) with numpy: the bootstrap's inner loop.

    Same definitions as `compute_metrics` (binary: positive class = index 1; multiclass: macro).
    """
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    out: dict[str, float | None] = {
        "accuracy": float(tp.sum() / max(1, len(y))),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else None,
    }
    if k == 2:
        out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
    else:
        out.update(precision=float(precision.mean()), recall=float(recall.mean()), f1=float(f1.mean()))
    out["roc_auc"] = out["log_loss"] = None
    if proba is not None:
        if k == 2:
            out["roc_auc"] = _auc_binary(y == 1, proba[:, 1])
        else:
            aucs = [_auc_binary(y == c, proba[:, c]) for c in range(k) if present[c]]
            aucs = [a for a in aucs if a is not None]
            out["roc_auc"] = float(np.mean(aucs)) if aucs else None
        p = np.clip(proba / proba.sum(axis=1, keepdims=True), 1e-15, 1)
        out["log_loss"] = float(-np.mean(np.log(p[np.arange(len(y)), y])))
    return out


def bootstrap_ci(
    task_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict[str, float | None]]:
    """Every metric with a percentile bootstrap confidence interval (resampling test rows)."""
    point = compute_metrics(task_type, y_true, y_pred, proba, classes)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples: dict[str, list[float]] = {k: [] for k in point}
    if task_type == "classification":
        labels = list(classes if classes is not None else np.unique(np.concatenate([y_true, y_pred])))
        index = {c: i for i, c in enumerate(labels)}
        y_idx = np.array([index[v] for v in y_true])
        p_idx = np.array([index.get(v, 0) for v in y_pred])

        def metrics_of(idx: np.ndarray) -> dict:
            return fast_classification_metrics(
                y_idx[idx], p_idx[idx], None if proba is None else proba[idx], len(labels)
            )
    else:

        def metrics_of(idx: np.ndarray) -> dict:
            return compute_metrics(task_type, y_true[idx], y_pred[idx])

    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for k, v in metrics_of(idx).items():
            if v is not None and math.isfinite(v):
                samples[k].append(v)
    out = {}
    for k, v in point.items():
        vals = samples[k]
        if v is None or len(vals) < n_boot // 2:
            out[k] = {"value": v, "ci_low": None, "ci_high": None}
        else:
            out[k] = {
                "value": v,
                "ci_low": float(np.quantile(vals, alpha / 2)),
                "ci_high": float(np.quantile(vals, 1 - alpha / 2)),
            }
    return out
