"""Rejected and failed predict requests per kind, for monitoring's error rate.

The serving code counts them per deployment and minute in `PredictionErrorCount`
(`services.error_count`); predictions that failed are never in the prediction log.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Sum

from deployments.models import Deployment, PredictionErrorCount

# Kinds as monitoring reports them: the client's fault, and ours.
CLIENT_KINDS = ("validation", "rate_limited", "paused")


def error_counts(*, deployment: Deployment, start: datetime, end: datetime) -> dict[str, int]:
    rows = dict(
        PredictionErrorCount.objects.filter(deployment=deployment, minute__gte=start, minute__lt=end)
        .values_list("kind")
        .annotate(n=Sum("count"))
        .order_by()
    )
    return {
        "validation": int(rows.get("validation", 0)),
        "server": int(rows.get("server", 0)),
        "rate_limited": int(rows.get("rate_limited", 0)),
        "paused": int(rows.get("paused", 0)),
    }
