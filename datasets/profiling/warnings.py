"""The profile's warnings: their kinds, how they are built and how they are ranked.

A warning is a dict `{"kind", "column", "severity", "message", "fix", "split"}` (stored on the
version and returned by the API), with optional `details` (the figures behind it, for clients)
and `score` (its strength within its kind, for ranking). docs/datasets.md says when each kind
fires; keep the two in step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}

# Within a severity, what a data scientist must read first: leaks, then problems of the target,
# then problems of the data, then remarks. Kinds not listed (split checks) come last.
KIND_GROUP: dict[str, int] = {
    "leakage_identical": 0,
    "leakage_single_feature": 0,
    "leakage_relation": 0,
    "single_class": 1,
    "target_capped": 1,
    "target_missing": 1,
    "class_imbalance": 1,
    "target_skewed": 1,
    "impossible_values": 2,
    "sentinel_values": 2,
    "extreme_values": 2,
    "duplicate_rows": 2,
    "empty_column": 2,
    "missing_values": 2,
    "constant": 3,
    "id_like": 3,
    "capped": 3,
    "high_cardinality": 3,
}
KINDS = tuple(KIND_GROUP)


def warning(
    kind: str,
    column: str,
    severity: str,
    message: str,
    fix: str,
    *,
    score: float = 0.0,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "column": column, "severity": severity, "message": message, "fix": fix}
    if details:
        out["details"] = _plain(details)
    out["score"] = round(float(score), 4) if math.isfinite(float(score)) else 0.0
    return out


def _plain(value: Any) -> Any:
    """JSON-safe figures: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    return value


def rank(warnings: list[dict], names: list[str]) -> list[dict]:
    """Severity, then the kind's group and the kind (in KIND_GROUP's order), then the strongest
    evidence (scores compare within a kind only), then column order."""
    for w in warnings:
        w.setdefault("split", "")

    def key(w: dict) -> tuple:
        column = names.index(w["column"]) if w["column"] in names else -1
        return (
            SEVERITY_ORDER.get(w["severity"], 3),
            KIND_GROUP.get(w["kind"], 9),
            KINDS.index(w["kind"]) if w["kind"] in KINDS else len(KINDS),
            -float(w.get("score") or 0.0),
            column,
        )

    return sorted(warnings, key=key)
