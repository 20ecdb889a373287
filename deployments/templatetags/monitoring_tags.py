"""`{% monitoring_summary deployment as m %}`: the panel's numbers, from the latest snapshot only."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def monitoring_summary(deployment) -> dict:
    from deployments.monitoring import selectors

    snap = selectors.snapshot_latest(deployment)
    return {"snapshot": snap, "data": snap.data if snap else {}, "health": selectors.health(deployment)}
