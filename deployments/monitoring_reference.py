"""Drift reference built once, when a model version is registered (owned by monitoring).

The registry calls `reference_stats_build` with the training features (a bounded sample) and
the model's predictions / confidences on them; what it returns is stored in
`ModelVersion.reference_stats` so snapshots never re-read the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def reference_stats_build(
    *,
    frame: pd.DataFrame,
    input_schema: list[dict[str, Any]],
    predictions: np.ndarray | None = None,
    confidences: np.ndarray | None = None,
) -> dict[str, Any]:
    return {}
