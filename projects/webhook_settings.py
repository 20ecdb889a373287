"""A project's webhook settings (owners): where events go, and the signing secret.

The secret is generated with the project, shown once to an owner (the API's create response, or
once on the webhook page when an owner asks), then never again: owners rotate it. Delivery (the
signed POST, a job) lives in `jobs.webhooks`; it reads the URL and secret from the project row.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from projects.destinations import destination_audit, destination_authorise, destination_check
from projects.events import AuditAction
from projects.models import Project

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that makes leaked secrets recognisable, not a secret

__all__ = ["destination_authorise"]


def webhook_secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def project_webhook_of(project: Project) -> dict[str, Any]:
    """What owners see of the webhook: never the secret."""
    return {
        "url": project.webhook_url,
        "secret_set": bool(project.webhook_secret),
        "secret_created_at": project.webhook_secret_created_at,
        "secret_shown": project.webhook_secret_shown_at is not None,
    }


@transaction.atomic
def project_webhook_update(*, project: Project, actor: Any, url: Any, field: str = "webhook_url") -> Project:
    """Point the project's webhook somewhere else (403 unless the actor manages connections).
    `field`: how the caller's input names the URL, for the error."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    clean = destination_check(actor=actor, project=project, field=field, value=url)
    destination_audit(
        actor=actor, project=project, obj=project, field="webhook_url", old=project.webhook_url, new=clean
    )
    if clean != project.webhook_url:
        project.webhook_url = clean
        project.save(update_fields=["webhook_url", "updated_at"])
    return project


@transaction.atomic
def project_webhook_rotate(*, project: Project, actor: Any) -> tuple[Project, str]:
    """A new signing secret, returned once; deliveries already queued keep the old one."""
    from projects.services import audit_record

    destination_authorise(actor=actor, project=project, field="webhook_secret")
    project = Project.objects.select_for_update().get(pk=project.pk)
    secret = webhook_secret_new()
    now = timezone.now()
    project.webhook_secret, project.webhook_secret_created_at, project.webhook_secret_shown_at = secret, now, now
    project.save(update_fields=["webhook_secret", "webhook_secret_created_at", "webhook_secret_shown_at", "updated_at"])
    audit_record(actor=actor, action=AuditAction.PROJECT_WEBHOOK_SECRET_ROTATED, project=project, obj=project)
    return project, secret


@transaction.atomic
def project_webhook_secret_reveal(*, project: Project, actor: Any) -> str | None:
    """The secret, the first time an owner asks for it (a new or migrated project); None after."""
    from projects.services import audit_record

    destination_authorise(actor=actor, project=project, field="webhook_secret")
    shown = Project.objects.filter(pk=project.pk, webhook_secret_shown_at__isnull=True).update(
        webhook_secret_shown_at=timezone.now()
    )
    if not shown:  # a conditional update: two owners opening the page at once, one sees it
        return None
    project.refresh_from_db()
    audit_record(actor=actor, action=AuditAction.PROJECT_WEBHOOK_SECRET_SHOWN, project=project, obj=project)
    return project.webhook_secret
