"""The drift reference of a model version, computed once from its training rows (no Django).

`reference_build` takes the training features (a bounded sample) and the model's predictions and
confidences on them, and returns:
- the JSON part, small and bounded (~10 numbers per numeric feature, one share per category):
  decile bin edges + shares, min / max / mean / std, missing rate, category shares, and the
  novelty profile of the review routing (`novelty`, see deployments.ml.novelty: ~40 numbers per
  numeric feature, a few thousand calibration scores at most); stored in
  `ModelVersion.reference_stats`;
- the arrays: the sorted (sub)sample of each numeric column (at most 100,000 values) for the KS
  test and the Wasserstein distance, stored by the registry in one `.npz` file. Sorting once
  here is what makes a snapshot's KS a `searchsorted` instead of a sort of the training data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deployments.ml import drift, novelty

REFERENCE_FORMAT = 1
PREDICTION = "__prediction__"
CONFIDENCE = "__confidence__"
NUMERIC_TYPES = {"numeric"}
CATEGORICAL_TYPES = {"categorical", "boolean"}


@dataclass
class Reference:
    stats: dict[str, Any]  # JSON-safe; `arrays_key` / `arrays_sha256` are added once the arrays are stored
    arrays: dict[str, np.ndarray]

    def arrays_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        return buffer.getvalue()


def reference_build(
    *,
    frame: pd.DataFrame,
    input_schema: list[dict[str, Any]],
    predictions: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
) -> Reference:
    """Precompute the drift reference of a model's training features (see the module docstring).

    Features of type datetime and text are recorded as "skipped". `predictions` are treated as
    categorical when they are not all numbers-with-many-values (classification), numeric
    otherwise (regression).
    """
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
        "novelty": novelty_profile(frame, input_schema),
    }
    return Reference(drift.json_safe(stats), arrays)


def novelty_profile(frame: pd.DataFrame, input_schema: list[dict[str, Any]]) -> dict[str, Any]:
    """The novelty profile (deployments.ml.novelty); a failure is recorded, it never fails the reference."""
    try:
        return novelty.novelty_fit(frame, input_schema)
    except Exception as exc:  # noqa: BLE001 - drift monitoring does not depend on it
        return {"format": novelty.NOVELTY_FORMAT, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}


def arrays_from_npz(data: bytes) -> dict[str, np.ndarray]:
    """The sorted reference samples back from their file (never unpickled)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        return {name: loaded[name] for name in loaded.files}
