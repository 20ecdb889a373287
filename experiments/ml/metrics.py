"""Every metric the platform computes, and its bootstrap confidence interval: no Django here.

Cross-validation, the final evaluation, monitoring's live performance and the retrain's
champion-versus-challenger comparison all call these functions, so a metric means the same thing
everywhere. Which way is better for each metric is not decided here: it is the metric table's
(`projects.metrics.METRICS`, `higher_is_better`).

Binary classification: precision, recall, F1 and ROC AUC are about one *positive* class. It is
explicit (`positive`): the experiment's, stored with the model version; by default the second of
the sorted classes (what scikit-learn's `pos_label` defaults to for 0/1 and what training used
before it was configurable). Multiclass metrics are macro averages.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from experiments.ml.average_precision import pr_auc

CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"]
REGRESSION_METRICS = ["rmse", "mae", "r2", "mape"]


def metric_names(task_type: str) -> list[str]:
    """The metrics `compute_metrics` returns for this task type."""
    return CLASSIFICATION_METRICS if task_type == "classification" else REGRESSION_METRICS


def default_positive(classes: Sequence[Any]) -> Any:
    """The positive class when none was chosen: the second of two (sorted) classes; None otherwise."""
    return classes[1] if len(classes) == 2 else None


def positive_index(classes: Sequence[Any], positive: Any) -> int:
    """Where `positive` sits among the classes (compared as text, as JSON may turn 1 into "1")."""
    if positive is not None:
        for i, c in enumerate(classes):
            if c == positive or str(c) == str(positive):
                return i
    return 1


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    y_true = y_true.astype(float)
    y_pred = np.asarray(y_pred, dtype=float)
    out: dict[str, float | None] = {}
    out["rmse"] = _finite(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
    out["mae"] = _finite(skm.mean_absolute_error(y_true, y_pred))
    out["r2"] = _finite(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else None
    nonzero = np.abs(y_true) > 1e-12
    out["mape"] = _finite(np.mean(np.abs((y_true - y_pred)[nonzero] / y_true[nonzero]))) if nonzero.any() else None
    return out


def _indices(values: Any, index: dict[Any, int]) -> np.ndarray:
    values = np.asarray(values).tolist()
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def compute_metrics(
    task_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    *,
    positive: Any = None,
) -> dict[str, float | None]:
    """Every metric of the task type. A metric that cannot be computed is None (not 0).

    `proba` has one column per class, in `classes` order; `positive` is the binary positive class.
    """
    y_true = np.asarray(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task_type == "regression":
            return _regression(y_true, y_pred)
        labels = np.asarray(classes) if classes is not None else np.unique(np.concatenate([y_true, y_pred]))
        index = {c: i for i, c in enumerate(labels.tolist())}
        pos = positive_index(labels.tolist(), positive)
        try:
            y_idx, p_idx = _indices(y_true, index), _indices(y_pred, index)
        except KeyError:
            # A label the model never saw in training (a rare class absent from the training
            # rows): count it, without probabilities for it.
            extra = sorted(set(y_true.tolist()) | set(np.asarray(y_pred).tolist()) - set(index), key=str)
            for v in extra:
                index.setdefault(v, len(index))
            y_idx, p_idx = _indices(y_true, index), _indices(y_pred, index)
            return fast_classification_metrics(y_idx, p_idx, None, len(index), positive=pos)
        if len(np.unique(y_idx)) < 2:
            proba = None  # ROC AUC and log loss need both classes present
        return fast_classification_metrics(y_idx, p_idx, proba, len(labels), positive=pos)


def reference_classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None, labels: np.ndarray, *, positive: Any = None
) -> dict[str, float | None]:
    """The same metrics through scikit-learn (the fast path is tested against this)."""
    out: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        binary = len(labels) == 2
        pos = positive_index(list(labels), positive)
        kw: dict[str, Any] = {"average": "binary", "pos_label": labels[pos]} if binary else {"average": "macro"}
        scope = {"labels": labels if not binary else None}
        out["accuracy"] = _finite(skm.accuracy_score(y_true, y_pred))
        out["balanced_accuracy"] = _finite(skm.balanced_accuracy_score(y_true, y_pred))
        out["precision"] = _finite(skm.precision_score(y_true, y_pred, zero_division=0, **scope, **kw))
        out["recall"] = _finite(skm.recall_score(y_true, y_pred, zero_division=0, **scope, **kw))
        out["f1"] = _finite(skm.f1_score(y_true, y_pred, zero_division=0, **scope, **kw))
        out["roc_auc"] = out["pr_auc"] = None
        out["log_loss"] = None
        if proba is not None and len(np.unique(y_true)) > 1:
            try:
                positives = y_true == labels[pos] if binary else label_binarize(y_true, classes=labels)
                out["pr_auc"] = _finite(skm.average_precision_score(positives, proba[:, pos] if binary else proba))
            except ValueError:
                out["pr_auc"] = None
            try:
                if binary:
                    out["roc_auc"] = _finite(skm.roc_auc_score(y_true == labels[pos], proba[:, pos]))
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


def _auc_binary(pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fast_classification_metrics(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, k: int, *, positive: int = 1
) -> dict:
    """The classification metrics from label indices (0..k-1) with numpy: the bootstrap's inner loop.

    Same definitions as `compute_metrics` (binary: the positive class is index `positive`;
    multiclass: macro averages).
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
        out.update(precision=float(precision[positive]), recall=float(recall[positive]), f1=float(f1[positive]))
    else:
        out.update(precision=float(precision.mean()), recall=float(recall.mean()), f1=float(f1.mean()))
    out["roc_auc"] = out["pr_auc"] = out["log_loss"] = None
    if proba is not None:
        out["pr_auc"] = pr_auc(y, proba, k, positive=positive)
        if k == 2:
            out["roc_auc"] = _auc_binary(y == positive, proba[:, positive])
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
    positive: Any = None,
) -> dict[str, dict[str, float | None]]:
    """Every metric with a percentile bootstrap confidence interval (resampling the rows).

    An interval is given only when at least half of the resamples could compute the metric.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    point = compute_metrics(task_type, y_true, y_pred, proba, classes, positive=positive)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples: dict[str, list[float]] = {k: [] for k in point}
    if task_type == "classification":
        labels = list(classes if classes is not None else np.unique(np.concatenate([y_true, y_pred])))
        index = {c: i for i, c in enumerate(labels)}
        y_idx = np.array([index.get(v, -1) for v in y_true.tolist()])
        p_idx = np.array([index.get(v, 0) for v in y_pred.tolist()])
        pos = positive_index(labels, positive)
        if (y_idx < 0).any():  # a label outside the classes: resample the slow way (rare)

            def metrics_of(idx: np.ndarray) -> dict:
                return compute_metrics(
                    task_type,
                    y_true[idx],
                    y_pred[idx],
                    None if proba is None else proba[idx],
                    classes,
                    positive=positive,
                )
        else:

            def metrics_of(idx: np.ndarray) -> dict:
                return fast_classification_metrics(
                    y_idx[idx], p_idx[idx], None if proba is None else proba[idx], len(labels), positive=pos
                )
    else:

        def metrics_of(idx: np.ndarray) -> dict:
            return compute_metrics(task_type, y_true[idx], y_pred[idx])

    for _ in range(n_boot if n else 0):
        idx = rng.integers(0, n, n)
        for k, v in metrics_of(idx).items():
            if v is not None and math.isfinite(v) and k in samples:
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


def wilson_interval(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion `p` observed on `n` (possibly effective, so
    fractional) trials; (0, 1) when there are none."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def binary_counts_ci(
    tp: int, fp: int, fn: int, tn: int, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict[str, dict[str, float | None]]:
    """Precision, recall, F1 and accuracy of a binary confusion matrix, each with a percentile
    bootstrap interval, when only the counts are stored (a threshold table of validation rows).

    Resampling the n rows with replacement draws the four counts from a multinomial with the
    observed shares: the same bootstrap as `bootstrap_ci`, without the rows. Definitions as
    `fast_classification_metrics` (an empty denominator gives 0).
    """
    counts = np.array([tp, fp, fn, tn], dtype=np.int64)
    n = int(counts.sum())

    def of(c: np.ndarray) -> dict[str, np.ndarray]:
        c = np.atleast_2d(c).astype(float)
        t, f_p, f_n, t_n = c.T
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(t + f_p > 0, t / (t + f_p), 0.0)
            recall = np.where(t + f_n > 0, t / (t + f_n), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
            accuracy = np.where(c.sum(axis=1) > 0, (t + t_n) / c.sum(axis=1), 0.0)
        return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}

    point = {k: float(v[0]) for k, v in of(counts).items()}
    if n == 0:
        return {k: {"value": None, "ci_low": None, "ci_high": None} for k in point}
    draws = of(np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot))
    return {
        k: {
            "value": v,
            "ci_low": float(np.quantile(draws[k], alpha / 2)),
            "ci_high": float(np.quantile(draws[k], 1 - alpha / 2)),
        }
        for k, v in point.items()
    }
