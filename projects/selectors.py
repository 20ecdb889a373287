from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from projects.access import visible_projects
from projects.models import AuditEvent, Membership, Project


def project_list(*, user: Any) -> list[tuple[Project, str]]:
    """The user's projects with the user's role in each, newest first."""
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    return [(p, roles.get(p.pk, "")) for p in visible_projects(user).order_by("-updated_at")]


def audit_list(*, project: Project, limit: int = 200) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(project=project)[:limit]
