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

# --- scoring ----------------------------------------------------------------------------------


@dataclass
class Scored:
    labels: list[Any]
    confidences: list[float | None]
    probabilities: list[dict[str, float] | None]


def label(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def score(model: Any, X: pd.DataFrame, *, task_type: str, classes: list[Any]) -> Scored:
    """One call to the pipeline for the whole request (or chunk)."""
    if task_type == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        model_classes = list(classes) if classes else [label(c) for c in model.classes_]
        best = proba.argmax(axis=1)
        labels = [label(model_classes[i]) for i in best.tolist()]
        conf = proba[np.arange(len(best)), best].tolist()
        names = [str(label(c)) for c in model_classes]
        rounded = np.round(proba, 6).tolist()
        probs = [dict(zip(names, row, strict=True)) for row in rounded]
        return Scored(labels, conf, probs)
    pred = model.predict(X)
    if task_type == "classification":
        return Scored([label(v) for v in pred.tolist()], [None] * len(pred), [None] * len(pred))
    return Scored(
        [float(v) for v in np.asarray(pred, dtype=np.float64).tolist()], [None] * len(pred), [None] * len(pred)
    )


def score_arrays(
    model: Any, X: pd.DataFrame, *, task_type: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Batch scoring: (labels, confidences, probability matrix) as arrays, no per-row objects."""
    if task_type == "classification" and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        best = proba.argmax(axis=1)
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
