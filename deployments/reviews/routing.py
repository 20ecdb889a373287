"""Review policies: which predictions go to human review (parsed from a deployment's settings).

The predict service calls `services.review_plan` before it writes anything, to know each
prediction's status, then `services.review_items_create` inside the same transaction as the
prediction rows.

Routing order, first match wins:
1. `class_rule`: the predicted label is in `review_policy["always_review"]` (e.g. "reject");
2. `low_confidence`: the confidence is under the threshold of its predicted class
   (`review_policy["class_thresholds"][label]`, else `deployment.review_threshold`);
3. `sample`: a random quality-control sample at `review_policy["sample_rate"]` of the
   predictions *not* routed by 1 or 2, each with `sample_weight = 1 / rate`, so decided sample
   items estimate the accuracy of everything that was not reviewed (Horvitz-Thompson weights).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from deployments.models import Deployment

# The QC sample only needs to be unpredictable to callers, not cryptographically strong;
# a process-wide SystemRandom avoids sharing the global `random` state with user code.
rng = random.SystemRandom()


@dataclass(frozen=True)
class Route:
    reason: str  # low_confidence, class_rule, sample
    sample_weight: float = 1.0


@dataclass(frozen=True)
class ReviewPolicy:
    threshold: float | None
    class_thresholds: dict[str, float]
    always_review: frozenset[str]
    sample_rate: float

    @property
    def active(self) -> bool:
        return bool(self.threshold is not None or self.class_thresholds or self.always_review or self.sample_rate > 0)


def _float_or_none(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def label_key(label: Any) -> str:
    """Labels are compared as strings: JSON object keys are strings, model classes may be ints."""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    return str(label)


def policy_of(deployment: Deployment) -> ReviewPolicy:
    """The deployment's review policy, tolerant of a hand-edited JSON (bad entries are ignored)."""
    raw = deployment.review_policy if isinstance(deployment.review_policy, dict) else {}
    class_thresholds: dict[str, float] = {}
    for label, t in (
        (raw.get("class_thresholds") or {}).items() if isinstance(raw.get("class_thresholds"), dict) else ()
    ):
        value = _float_or_none(t)
        if value is not None and 0 <= value <= 1:
            class_thresholds[label_key(label)] = value
    always = raw.get("always_review") or []
    always_review = frozenset(label_key(x) for x in always) if isinstance(always, list) else frozenset()
    rate = _float_or_none(raw.get("sample_rate")) or 0.0
    return ReviewPolicy(
        threshold=deployment.review_threshold,
        class_thresholds=class_thresholds,
        always_review=always_review,
        sample_rate=min(max(rate, 0.0), 1.0),
    )


def policy_validate(policy: Any) -> dict[str, Any]:
    """Validate a review policy body (used by whoever edits deployments); raises InvalidInput."""
    from mlplatform.errors import InvalidInput

    if policy in (None, ""):
        return {}
    if not isinstance(policy, dict):
        raise InvalidInput("Must be an object.", field="review_policy")
    unknown = set(policy) - {"class_thresholds", "always_review", "sample_rate"}
    if unknown:
        raise InvalidInput(f"Unknown key {sorted(unknown)[0]!r}.", field="review_policy")
    out: dict[str, Any] = {}
    thresholds = policy.get("class_thresholds") or {}
    if not isinstance(thresholds, dict):
        raise InvalidInput("class_thresholds must map a label to a number.", field="review_policy")
    for label, t in thresholds.items():
        value = _float_or_none(t)
        if value is None or not 0 <= value <= 1:
            raise InvalidInput(f"Threshold for {label!r} must lie between 0 and 1.", field="review_policy")
    out["class_thresholds"] = {label_key(k): float(v) for k, v in thresholds.items()}
    always = policy.get("always_review") or []
    if not isinstance(always, list):
        raise InvalidInput("always_review must be a list of labels.", field="review_policy")
    out["always_review"] = [label_key(x) for x in always]
    rate = policy.get("sample_rate", 0) or 0
    rate_f = _float_or_none(rate)
    if rate_f is None or not 0 <= rate_f <= 1:
        raise InvalidInput("sample_rate must lie between 0 and 1.", field="review_policy")
    out["sample_rate"] = rate_f
    return out
