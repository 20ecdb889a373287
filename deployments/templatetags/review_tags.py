"""`{% load review_tags %}{% review_health_for deployment as health %}` for the review panel,
so pages that include `_review_panel.html` only need `deployment` in their context."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.simple_tag
def review_health_for(deployment: Any) -> dict[str, Any]:
    from deployments.reviews.selectors import review_health

    return review_health(deployment=deployment)


@register.filter
def duration(seconds: Any) -> str:
    """120 -> "2 min", 7200 -> "2.0 h", None -> "—"."""
    if seconds is None or seconds == "":
        return "—"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


@register.filter
def pct(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.1f}%"


REASONS = {
    "low_confidence": "Low confidence",
    "class_rule": "Class rule",
    "out_of_distribution": "Unlike training data",
    "sample": "QC sample",
}


@register.filter
def reason_label(reason: str) -> str:
    return REASONS.get(reason, reason)
