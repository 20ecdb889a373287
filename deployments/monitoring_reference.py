"""Drift reference built once, when a model version is registered (owned by monitoring).

The registry calls `reference_stats_build` with the training features (a bounded sample) and
the model's predictions / confidences on them; what it returns is stored in
`ModelVersion.reference_stats` so snapshots never re-read the training data.

What is stored:
- in the JSON (small, bounded: ~10 numbers per numeric feature, one share per category):
  decile bin edges + shares, min / max / mean / std, missing rate, category shares;
- in one `.npz` file (written with `bytes_save`, read back with a hash check and
  `allow_pickle=False`): the sorted (sub)sample of each numeric column (at most 100,000 values)
  for the KS test and the Wasserstein distance. Sorting once here is what makes a snapshot's
  KS a `searchsorted` instead of a sort of the training data.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from deployments import drift

REFERENCE_FORMAT = 1
PREDICTION = "__prediction__"
CONFIDENCE = "__confidence__"
NUMERIC_TYPES = {"numeric"}
CATEGORICAL_TYPES = {"categorical", "boolean"}


def reference_stats_build(
    *,
    frame: pd.DataFrame,
    input_schema: list[dict[str, Any]],
    predictions: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
) -> dict[str, Any]:
    """Precompute the drift reference of a model's training features (see the module docstring).

    Features of type datetime and text are recorded as "skipped". `predictions` are treated as
    categorical when they are not all numbers-with-many-values (classification), numeric
    otherwise (regression).
    """
    from mlplatform.artifacts import bytes_save

    features: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for i, spec in enumerate(input_schema):
        name = spec["name"]
        kind = spec.get("type", "numeric")
        if name not in frame.columns:
            features[name] = {"type": "skipped", "reason": "not in the reference sample"}
            continue
        column = frame[name]
        if kind in NUMERIC_TYPES:
            ref = drift.numeric_reference(pd.to_numeric(column, errors="coerce").to_numpy(dtype=float))
            features[name] = ref["json"] | {"array": f"a{i}"}
            arrays[f"a{i}"] = ref["sorted"]
        elif kind in CATEGORICAL_TYPES:
            features[name] = drift.categorical_reference(column.to_numpy(dtype=object))
        else:
            features[name] = {"type": "skipped", "reason": f"{kind} features are not tested for drift"}

    outputs: dict[str, Any] = {}
    if predictions is not None and len(predictions):
        preds = np.asarray(predictions)
        if preds.dtype.kind in "fc" and np.unique(preds).size > 20:
            ref = drift.numeric_reference(preds.astype(float))
            outputs[PREDICTION] = ref["json"] | {"array": "prediction"}
            arrays["prediction"] = ref["sorted"]
        else:
            outputs[PREDICTION] = drift.categorical_reference(preds.astype(object))
    if confidences is not None and len(confidences):
        ref = drift.numeric_reference(np.asarray(confidences, dtype=float))
        outputs[CONFIDENCE] = ref["json"] | {"array": "confidence"}
        arrays["confidence"] = ref["sorted"]

    stats: dict[str, Any] = {
        "format": REFERENCE_FORMAT,
        "n_rows": len(frame),
        "features": features,
        "outputs": outputs,
    }
    if arrays:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        stored = bytes_save(buffer.getvalue(), prefix="monitoring/references", suffix=".npz")
        stats["arrays_key"] = stored.key
        stats["arrays_sha256"] = stored.sha256
    return drift._json_safe(stats)


@lru_cache(maxsize=16)
def _arrays_cached(key: str, sha256: str) -> dict[str, np.ndarray]:
    from mlplatform.artifacts import read_verified

    with np.load(io.BytesIO(read_verified(key, sha256)), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def reference_arrays(reference_stats: dict[str, Any]) -> dict[str, np.ndarray]:
    """The sorted reference samples (cached per process: the file is immutable, named by hash)."""
    key = reference_stats.get("arrays_key")
    if not key:
        return {}
    return _arrays_cached(key, reference_stats.get("arrays_sha256", ""))
