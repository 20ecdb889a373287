"""Which predictions go to human review. Owned by the review queue (issue 6).

The predict service calls `review_plan` before it writes anything, to know each prediction's
status, then `review_items_create` inside the same transaction as the prediction rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployments.models import Deployment, Prediction, ReviewItem


@dataclass(frozen=True)
class Route:
    reason: str  # low_confidence, class_rule, sample
    sample_weight: float = 1.0


def review_plan(*, deployment: Deployment, labels: list, confidences: list[float | None]) -> list[Route | None]:
    """One entry per prediction: a Route when it must be reviewed, else None."""
    return [None] * len(labels)


def review_items_create(
    *, deployment: Deployment, predictions: list[Prediction], plan: list[Route | None]
) -> list[ReviewItem]:
    """Create one review item per routed prediction. Call inside the predictions' transaction."""
    return []
