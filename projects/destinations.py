"""Outbound destinations (webhook URLs) are an owner's decision.

A webhook URL decides where the platform sends a project's data (events, predictions, review
decisions, alerts). Changing one is allowed only to the roles `projects.roles.PERMISSIONS`
gives `Action.MANAGE_CONNECTIONS`, whatever the path (API, page, any model that holds a URL),
the URL must pass the outbound policy (`mlplatform.netguard`), and every change is audited
with its old and new value. Every URL field calls one of these:

    # inside the transaction that saves the change (validation of the rest done first):
    deployment.review_webhook_url = destination_change(
        actor=actor, project=deployment.project, obj=deployment, field="review_webhook_url",
        old=deployment.review_webhook_url, new=value)
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from mlplatform import netguard
from mlplatform.errors import InvalidInput, PermissionDenied
from projects.events import AuditAction
from projects.models import Project
from projects.roles import Action

MAX_URL_LENGTH = 200  # the URLField columns that hold them


def destinations_visible(user: Any, project: Project | int) -> bool:
    """Who may read webhook URLs (they often carry their receiver's token): the roles that may
    change them. Everyone else reads `None` in the API and no URL field on the pages."""
    from projects.access import can

    return can(user, project, Action.MANAGE_CONNECTIONS)


def destination_authorise(*, actor: Any, project: Project, field: str) -> None:
    """403 naming `field` unless the actor's role may change where the project's data goes.

    `actor=None` is the platform itself (a migration, the demo); anyone else needs the role.
    """
    from projects.access import can

    if actor is not None and not can(actor, project, Action.MANAGE_CONNECTIONS):
        raise PermissionDenied(
            "Only roles that manage connections (owners) may change where the platform sends data.", field=field
        )


def destination_check(*, actor: Any, project: Project, field: str, value: Any) -> str:
    """The cleaned URL ("" clears it), or 403 (role) / 400 naming `field` (policy). Writes nothing."""
    destination_authorise(actor=actor, project=project, field=field)
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str) or len(value.strip()) > MAX_URL_LENGTH:
        raise InvalidInput(f"An http(s) URL of at most {MAX_URL_LENGTH} characters.", field=field)
    try:
        return netguard.check_url_for_saving(value)
    except netguard.Refused as exc:
        raise InvalidInput(str(exc), field=field) from None


def destination_audit(*, actor: Any, project: Project, obj: Model, field: str, old: str, new: str) -> None:
    """Record a change of `field` on `obj` with both values (call in the saving transaction)."""
    from projects.services import audit_record

    if (old or "") == (new or ""):
        return
    audit_record(
        actor=actor,
        action=AuditAction.DESTINATION_CHANGED,
        project=project,
        obj=obj,
        data={"field": field, "from": old or "", "to": new or ""},
    )


def destination_change(*, actor: Any, project: Project, obj: Model, field: str, old: str, new: Any) -> str:
    """Check and audit one URL change; returns the value to save (the caller saves it)."""
    clean = destination_check(actor=actor, project=project, field=field, value=new)
    destination_audit(actor=actor, project=project, obj=obj, field=field, old=old, new=clean)
    return clean
