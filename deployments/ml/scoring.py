"""Scoring a fitted pipeline and keeping loaded pipelines, free of Django.

- `score` calls the pipeline once for the whole request (or chunk) and shapes each answer.
- `score_arrays` is batch scoring: arrays, no per-row objects.
- `model_cached` keeps loaded pipelines per process, keyed by (model version id, sha256).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from experiments.ml.metrics import positive_index

# --- scoring ----------------------------------------------------------------------------------


@dataclass
class Scored:
    labels: list[Any]
    confidences: list[float | None]
    probabilities: list[dict[str, float] | None]
    threshold: float | None = None  # the decision threshold that decided the labels (None: argmax)


def decide(proba: np.ndarray, classes: list[Any], threshold: float | None, positive: Any) -> tuple[np.ndarray, bool]:
    """The index of the decided class per row, and whether `threshold` decided it.

    Binary with a threshold: the positive class when its probability is at least `threshold`
    (`positive_index`: the same positive class as every metric); otherwise the most probable class.
    """
    if threshold is None or proba.ndim != 2 or proba.shape[1] != 2 or len(classes) != 2:
        return proba.argmax(axis=1), False
    j = positive_index(classes, positive)
    return np.where(proba[:, j] >= threshold, j, 1 - j), True


def label(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def score(
    model: Any,
    X: pd.DataFrame,
    *,
    task_type: str,
    classes: list[Any],
    threshold: float | None = None,
    positive: Any = None,
) -> Scored:
    """One call to the pipeline for the whole request (or chunk). `threshold` (binary only): see `decide`."""
    if task_type == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        model_classes = list(classes) if classes else [label(c) for c in model.classes_]
        best, applied = decide(proba, model_classes, threshold, positive)
        labels = [label(model_classes[i]) for i in best.tolist()]
        # The confidence stays the probability of the class returned (review routing reads it).
        conf = proba[np.arange(len(best)), best].tolist()
        names = [str(label(c)) for c in model_classes]
        rounded = np.round(proba, 6).tolist()
        probs = [dict(zip(names, row, strict=True)) for row in rounded]
        return Scored(labels, conf, probs, threshold if applied else None)
    pred = model.predict(X)
    if task_type == "classification":
        return Scored([label(v) for v in pred.tolist()], [None] * len(pred), [None] * len(pred))
    return Scored(
        [float(v) for v in np.asarray(pred, dtype=np.float64).tolist()], [None] * len(pred), [None] * len(pred)
    )


def score_arrays(
    model: Any, X: pd.DataFrame, *, task_type: str, threshold: float | None = None, positive: Any = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Batch scoring: (labels, confidences, probability matrix) as arrays, no per-row objects."""
    if task_type == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        best, _ = decide(proba, [label(c) for c in model.classes_], threshold, positive)
        labels = np.asarray(model.classes_)[best]
        return labels, proba[np.arange(len(best)), best], proba
    return np.asarray(model.predict(X)), None, None


# --- model cache ------------------------------------------------------------------------------

_models: dict[tuple[int, str], Any] = {}
_models_lock = threading.Lock()
MODEL_CACHE_SIZE = 8


def model_cached(version_id: int, sha256: str, loader: Callable[[], Any]) -> Any:
    """The loaded pipeline of a model version, loaded once per process (and per file hash)."""
    key = (version_id, sha256)
    model = _models.get(key)
    if model is not None:
        return model
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = loader()
            if len(_models) >= MODEL_CACHE_SIZE:
                _models.pop(next(iter(_models)))
            _models[key] = model
    return model


def model_cache_clear() -> None:
    with _models_lock:
        _models.clear()
