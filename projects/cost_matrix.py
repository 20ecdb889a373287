"""The optional cost matrix of a binary classification project's problem statement: what a false
approval, a false refusal and a human review cost. Plain Python (the ML core reads it too)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

COST_KEYS = ("false_positive", "false_negative", "review", "true_positive", "true_negative")
MAX_COST = 1e9


class CostMatrixError(ValueError):
    """A bad cost matrix; `field` names the key (cost_matrix.<key>)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CostMatrix:
    """What each outcome of one decision costs, in `unit` (e.g. EUR, minutes). `review` None: human
    review is not an option (no band is proposed)."""

    false_positive: float
    false_negative: float
    unit: str
    review: float | None = None
    true_positive: float = 0.0
    true_negative: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_matrix_parse(raw: Any) -> CostMatrix | None:
    """Validate a cost matrix body: None/{} means none; raises CostMatrixError naming the key."""
    if raw in (None, "", {}):
        return None
    if not isinstance(raw, dict):
        raise CostMatrixError("cost_matrix", 'Must be an object such as {"false_positive": 5, ...}.')
    unknown = sorted(set(raw) - {*COST_KEYS, "unit"})
    if unknown:
        raise CostMatrixError(f"cost_matrix.{unknown[0]}", f"Unknown key {unknown[0]!r}.")
    values: dict[str, Any] = {}
    for key in COST_KEYS:
        value = raw.get(key)
        if value is None or value == "":
            if key in ("false_positive", "false_negative"):
                raise CostMatrixError(f"cost_matrix.{key}", f"Give the cost of a {key.replace('_', ' ')}.")
            continue
        if isinstance(value, bool):
            raise CostMatrixError(f"cost_matrix.{key}", "Must be a number.")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise CostMatrixError(f"cost_matrix.{key}", "Must be a number.") from None
        if not math.isfinite(f) or f < 0 or f > MAX_COST:
            raise CostMatrixError(f"cost_matrix.{key}", f"Must be a number between 0 and {MAX_COST:g}.")
        values[key] = f
    unit = str(raw.get("unit") or "").strip()
    if not unit or len(unit) > 20:
        raise CostMatrixError(
            "cost_matrix.unit", "Name the unit of the costs (e.g. EUR, minutes), 20 characters at most."
        )
    if values["false_positive"] + values["false_negative"] <= 0:
        raise CostMatrixError("cost_matrix.false_positive", "At least one error must cost something.")
    return CostMatrix(unit=unit, **values)
