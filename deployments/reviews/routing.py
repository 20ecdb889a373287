"""Review policies: which predictions go to human review (parsed from a deployment's settings).

The predict service calls `services.review_plan` before it writes anything, to know each
prediction's status, then `services.review_items_create` inside the same transaction as the
prediction rows.

Routing order, first match wins:
1. `class_rule`: the predicted label is in `review_policy["always_review"]` (e.g. "reject");
2. `low_confidence`: the confidence is under the threshold of its predicted class
   (`review_policy["class_thresholds"][label]`, else `deployment.review_threshold`);
3. `out_of_distribution`: the row's inputs are unlike the training data (`deployments.ml.novelty`:
   a score from the version's reference, over a cut-off calibrated on held-out training rows so
   that `review_policy["novelty_rate"]` of in-distribution rows are flagged), however confident
   the model is. After `low_confidence` on purpose: a low-confidence row is reviewed anyway, and
   its item still carries the novelty explanation when it is novel too, so the reviewer sees it;
   the `out_of_distribution` reason then counts exactly the confident rows that drift adds;
4. `sample`: a random quality-control sample at `review_policy["sample_rate"]` of the
   predictions *not* routed by 1 to 3, each with `sample_weight = 1 / rate`, so decided sample
   items estimate the accuracy of everything that was not reviewed (Horvitz-Thompson weights).

Budget: there is no per-hour cap; the review load is the sum of what each rule routes. The
novelty rule adds at most `novelty_rate` of in-distribution traffic (its false-alarm rate) plus
the novel rows themselves, so under drift it grows with the drift: the health page shows the
share each reason takes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from deployments.ml.novelty import RATE_MAX, RATE_MIN, NoveltyScorer
from deployments.models import Deployment, ModelVersion, ReferenceStatus

# The QC sample only needs to be unpredictable to callers, not cryptographically strong;
# a process-wide SystemRandom avoids sharing the global `random` state with user code.
rng = random.SystemRandom()


@dataclass(frozen=True)
class Route:
    reason: str  # class_rule, low_confidence, out_of_distribution, sample
    sample_weight: float = 1.0
    novelty: dict[str, Any] | None = None  # why the row is novel, when it is (any reason)


@dataclass(frozen=True)
class ReviewPolicy:
    threshold: float | None
    class_thresholds: dict[str, float]
    always_review: frozenset[str]
    sample_rate: float
    novelty_rate: float = 0.0  # 0: the out_of_distribution rule is off

    @property
    def active(self) -> bool:
        return bool(
            self.threshold is not None
            or self.class_thresholds
            or self.always_review
            or self.sample_rate > 0
            or self.novelty_rate > 0
        )


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
    novelty = _float_or_none(raw.get("novelty_rate")) or 0.0
    return ReviewPolicy(
        threshold=deployment.review_threshold,
        class_thresholds=class_thresholds,
        always_review=always_review,
        sample_rate=min(max(rate, 0.0), 1.0),
        novelty_rate=novelty if RATE_MIN <= novelty <= RATE_MAX else 0.0,
    )


def policy_validate(policy: Any) -> dict[str, Any]:
    """Validate a review policy body (used by whoever edits deployments); raises InvalidInput."""
    from mlplatform.errors import InvalidInput

    if policy in (None, ""):
        return {}
    if not isinstance(policy, dict):
        raise InvalidInput("Must be an object.", field="review_policy")
    unknown = set(policy) - {"class_thresholds", "always_review", "sample_rate", "novelty_rate"}
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
    novelty = policy.get("novelty_rate", 0) or 0
    novelty_f = _float_or_none(novelty)
    if isinstance(novelty, bool) or novelty_f is None or not (novelty_f == 0 or RATE_MIN <= novelty_f <= RATE_MAX):
        raise InvalidInput(
            f"novelty_rate (the share of in-distribution rows flagged) must be 0 (off) or lie between "
            f"{RATE_MIN} and {RATE_MAX}.",
            field="review_policy",
        )
    if novelty_f:
        out["novelty_rate"] = novelty_f
    return out


# --- the novelty rule --------------------------------------------------------------------------

_scorers: dict[int, NoveltyScorer | None] = {}


def novelty_scorer(model_version_id: int | None) -> NoveltyScorer | None:
    """The version's novelty scorer (None when it has no profile): read once per process.

    A prepared version's reference never changes, so the cache needs no invalidation; only the
    profile is read (a JSON key of `reference_stats`), not the whole reference.
    """
    if model_version_id is None:
        return None
    if model_version_id in _scorers:
        return _scorers[model_version_id]
    row = (
        ModelVersion.objects.filter(pk=model_version_id)
        .values_list("reference_stats__novelty", "reference_status")
        .first()
    )
    profile, status = row if row is not None else (None, None)
    scorer = NoveltyScorer(profile) if isinstance(profile, dict) else None
    if scorer is not None and not scorer.ready:
        scorer = None
    if scorer is None and status != ReferenceStatus.READY:
        return None  # not prepared yet: asked again next time
    if len(_scorers) > 64:
        _scorers.clear()
    _scorers[model_version_id] = scorer
    return scorer


def novelty_routes(
    *, policy: ReviewPolicy, model_version_id: int | None, columns: dict[str, Any] | None
) -> list[dict[str, Any] | None] | None:
    """Per row: why it is novel (score, cut-off, the telling features), or None; None when the
    rule is off or the version has no profile. Vectorised; explanations only for novel rows."""
    if policy.novelty_rate <= 0 or not columns:
        return None
    scorer = novelty_scorer(model_version_id)
    if scorer is None or any(name not in columns for name in scorer.names):
        return None
    novel, scores, parts = scorer.flag(columns, policy.novelty_rate)
    out: list[dict[str, Any] | None] = [None] * len(scores)
    if not novel.any():
        return out
    cutoff = scorer.cutoff(policy.novelty_rate)
    for i in np.flatnonzero(novel):
        out[i] = {
            "score": round(float(scores[i]), 3),
            "cutoff": round(cutoff, 3),
            "rate": policy.novelty_rate,
            "features": scorer.explain(columns, int(i), parts[i]),
        }
    return out
