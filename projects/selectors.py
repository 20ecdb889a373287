from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from projects.access import visible_projects
from projects.metrics import METRICS
from projects.models import AuditEvent, Membership, Project


@dataclass(frozen=True)
class ProjectRow:
    project: Project
    role: str
    open_alerts: int
    pending_reviews: int

    @property
    def goal(self) -> str:
        """ "F1 ≥ 0.85" or "RMSE ≤ 25,000": the success bar in the metric's direction."""
        from mlplatform.templatefilters import format_number

        p = self.project
        info = METRICS.get(p.success_metric)
        if info is None:
            return ""
        if p.success_threshold is None:
            return info.label
        return f"{info.label} {'≥' if info.higher_is_better else '≤'} {format_number(p.success_threshold)}"


def _count_per_project(model_label: str, **conditions: Any) -> Subquery:
    """COUNT(*) of a project-owned model's rows for the outer project, as a subquery."""
    model = apps.get_model(model_label)
    rows = (
        model.objects.filter(project=OuterRef("pk"), **conditions)
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(rows, output_field=IntegerField())


def project_list(*, user: Any) -> list[ProjectRow]:
    """The user's projects, newest first, with the user's role and what needs attention.

    One query for the whole list: the role, firing alerts and undecided review items (pending or
    escalated) are subqueries of the projects query, never a query per project.
    """
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    projects = (
        visible_projects(user)
        .annotate(
            my_role=Subquery(role),
            open_alerts=Coalesce(_count_per_project("deployments.Alert", state="firing"), Value(0)),
            pending_reviews=Coalesce(
                _count_per_project("deployments.ReviewItem", status__in=("pending", "escalated")), Value(0)
            ),
        )
        .order_by("-updated_at")
    )
    return [ProjectRow(p, p.my_role or "", p.open_alerts, p.pending_reviews) for p in projects]


def audit_list(*, project: Project, limit: int = 200) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(project=project)[:limit]


# Django's default str() of a model without __str__: "ApiKey object (2)".
_DEFAULT_REPR = re.compile(r"^\w+ object \((\w+)\)$")


def _verbose_names() -> dict[str, str]:
    return {m._meta.model_name: str(m._meta.verbose_name) for m in apps.get_models()}


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    action: str
    target: str
    details: list[tuple[str, str]]


def audit_rows(*, project: Project, limit: int = 200) -> list[AuditRow]:
    """Audit events as a person reads them: "Api key #2" rather than "ApiKey object (2)", the
    recorded data as labelled values rather than a Python dict."""
    from mlplatform.templatefilters import pairs

    rows = []
    names = _verbose_names()
    for e in audit_list(project=project, limit=limit):
        kind = re.sub(r"\bapi\b", "API", names.get(e.object_type, e.object_type.replace("_", " ")))
        kind = kind[:1].upper() + kind[1:]
        name = "" if _DEFAULT_REPR.match(e.object_repr or "") else e.object_repr
        if e.object_type:
            target = f"{kind} #{e.object_id}" + (f" · {name}" if name and name != e.object_id else "")
        else:
            target = name
        rows.append(AuditRow(e, e.action.replace("_", " ").replace(".", " · "), target, pairs(e.data or {})))
    return rows
