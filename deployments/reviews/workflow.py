"""Workflow stage provider (see projects.workflow.stage): human review of uncertain predictions."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Min
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, ReviewItem, ReviewStatus
from deployments.reviews.routing import policy_of
from projects.models import Project
from projects.services import StageState
from projects.workflow import stage


@stage("review")
def _review(project: Project, states: dict[str, StageState]) -> StageState:
    url = reverse("deployments:reviews", args=[project.pk])
    deployments = list(Deployment.objects.filter(project=project))
    if not deployments:
        return StageState("review", "Review", "todo", "No deployment yet.", "Deploy a model first.", url)
    with_policy = [d for d in deployments if policy_of(d).active]
    if not with_policy:
        return StageState(
            "review",
            "Review",
            "todo",
            "No review policy: every prediction is final.",
            "Set a confidence threshold (and a QC sample rate) on a deployment.",
            url,
        )
    waiting = ReviewItem.objects.filter(project=project, status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED])
    agg = waiting.aggregate(oldest=Min("created_at"))
    count = waiting.count()
    if count:
        age_min = (timezone.now() - agg["oldest"]).total_seconds() / 60
        breached = [
            d.name
            for d in with_policy
            if waiting.filter(
                deployment=d, created_at__lt=timezone.now() - timedelta(minutes=d.review_sla_minutes)
            ).exists()
        ]
        if breached:
            return StageState(
                "review",
                "Review",
                "blocked",
                f"{count} waiting; the oldest for {age_min:.0f} min, past the SLA of {', '.join(breached)}.",
                "Work through the review queue: the oldest item is past its SLA.",
                url,
            )
        return StageState(
            "review",
            "Review",
            "in_progress",
            f"{count} item(s) waiting; the oldest for {age_min:.0f} min.",
            "Work through the review queue.",
            url,
        )
    decided = ReviewItem.objects.filter(project=project).exclude(
        status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    )
    return StageState("review", "Review", "done", f"Queue empty; {decided.count()} decision(s) so far.", "", url)
