"""Small helpers shared by the profile's modules: JSON-safe numbers, seeded samples, ranks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from datasets.kinds import BOOLEAN, NUMERIC

_BOOL_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0, "t": 1.0, "f": 0.0}


def json_float(x: Any) -> float | None:
    """A JSON-safe float (NaN / inf -> None)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def sample_rows(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most `n` rows drawn at random (seeded), kept in file order."""
    if len(frame) <= n:
        return frame
    idx = np.random.default_rng(seed).choice(len(frame), size=n, replace=False)
    idx.sort()
    return frame.iloc[idx]


def as_numeric(series: pd.Series, kind: str) -> pd.Series | None:
    """Numbers for a numeric or boolean column (yes / no -> 1 / 0), None for other kinds."""
    if kind == NUMERIC:
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if kind == BOOLEAN:
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            return series.astype("float64")
        # Factorise first: mapping two distinct strings is cheap, mapping a million is not.
        codes, uniques = pd.factorize(series)
        lookup = np.array([_BOOL_WORDS.get(str(u).strip().lower(), np.nan) for u in uniques] + [np.nan])
        return pd.Series(lookup[codes], index=series.index, dtype="float64")
    return None


def rank_auc(positive: np.ndarray, score: np.ndarray, *, ranks: np.ndarray | None = None) -> float | None:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half (`ranks` if known)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    if ranks is None:
        ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_interval(auc: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """95% interval of an AUC (Hanley & McNeil 1982): cheap, and close to DeLong's for one score."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / max(1, n_pos * n_neg)
    half = 1.96 * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def skewness(v: np.ndarray) -> float | None:
    if len(v) < 3:
        return None
    d = v - v.mean()
    std = float(np.sqrt(np.dot(d, d) / len(d)))
    return float(np.dot(d * d, d) / len(d) / std**3) if std > 0 else None


def fmt_number(x: float) -> str:
    """A number as people write it: 50, 0.167, 13,158, 999,999, 1.2e+20."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    a = abs(x)
    if a >= 1e15 or a < 1e-4:
        return f"{x:.3g}"
    if a >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"
