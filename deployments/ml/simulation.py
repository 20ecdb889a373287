"""The traffic simulator's rows (no Django): training rows with gradual drift and a changed concept.

Used by `manage.py simulate_traffic` (which sends them through the predict service) and by the
review-routing benchmark (which scores them directly), so both see the same traffic.

Over the simulated period the drift grows linearly from 0 to `drift`: the numeric feature whose
training correlation with the target is most negative (most positive for regression) is
shifted by up to 3 standard deviations, and the ground truth follows a changed concept
(shifted rows above the training 75th percentile belong to the positive class, or get a larger
target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Traffic:
    rows: pd.DataFrame  # drawn training rows, the drift feature shifted (targets included)
    actual: pd.Series  # the ground truth under the changed concept
    feature: str | None  # the shifted feature
    progress: np.ndarray  # 0 -> 1 over the period, per row
    changed: np.ndarray  # rows whose ground truth the changed concept rewrote


def drift_feature(train: pd.DataFrame, schema: list[dict], target: str, task_type: str, positive: Any) -> str | None:
    numeric = [f["name"] for f in schema if f.get("type") == "numeric" and f["name"] in train.columns]
    if not numeric:
        return None
    if task_type == "classification":
        y = (train[target].astype(str) == str(positive)).astype(float)
        corr = {c: np.corrcoef(pd.to_numeric(train[c], errors="coerce").fillna(0), y)[0, 1] for c in numeric}
        return min(corr, key=lambda c: np.nan_to_num(corr[c], nan=0.0))
    y = pd.to_numeric(train[target], errors="coerce").fillna(0)
    corr = {c: np.corrcoef(pd.to_numeric(train[c], errors="coerce").fillna(0), y)[0, 1] for c in numeric}
    return min(corr, key=lambda c: abs(np.nan_to_num(corr[c], nan=0.0)))


def drifted_traffic(
    *,
    train: pd.DataFrame,
    schema: list[dict],
    target: str,
    task_type: str,
    positive: Any,
    n: int,
    drift: float,
    rng: np.random.Generator,
) -> Traffic:
    rows = train.iloc[rng.integers(0, len(train), n)].reset_index(drop=True)
    progress = np.linspace(0, 1, n)  # drift grows over the simulated period
    strength = drift * progress
    feature = drift_feature(train, schema, target, task_type, positive)
    actual = rows[target].copy()
    changed = np.zeros(n, dtype=bool)
    if feature is not None and drift > 0:
        col = pd.to_numeric(train[feature], errors="coerce")
        std = float(col.std() or 1.0)
        q75 = float(col.quantile(0.75))
        shifted = pd.to_numeric(rows[feature], errors="coerce") + 3 * std * strength
        rows[feature] = shifted
        changed = (shifted > q75).to_numpy() & (rng.random(n) < strength)
        if task_type == "classification":
            actual = actual.astype(object)
            actual[changed] = positive
        else:
            actual = pd.to_numeric(actual, errors="coerce") + changed * 2 * float(
                pd.to_numeric(train[target], errors="coerce").std() or 1.0
            )
    return Traffic(rows, actual, feature, progress, changed)
