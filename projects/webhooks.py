"""Signed, retried webhooks for registry, deployment and review events.

Each delivery is a job (`webhook.deliver`): POST of a JSON body with
`X-Mlplatform-Event`, `X-Mlplatform-Delivery` (the job id, for de-duplication on the receiver),
`X-Mlplatform-Timestamp` and `X-Mlplatform-Signature: sha256=<HMAC-SHA256 of "<timestamp>.<body>"
with the secret>` (README, "Verifying webhooks"). A non-2xx answer or a network error is
retried with back-off up to the job's attempts. URLs go through mlplatform.netguard (no SSRF).

A project's signing secret is generated with the project, shown once to an owner (the API's
create response, or once on the webhook page when an owner asks), then never again:
owners rotate it. The secret and the URL travel to the worker in the job's params, declared
secret: no API, page or audit event shows them, and the row forgets them once the delivery is
finished.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from jobs.models import Job
from jobs.runner import JobContext, RetryableError, job_enqueue, job_handler
from mlplatform import netguard
from mlplatform.errors import InvalidInput
from projects.models import Project

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that makes leaked secrets recognisable, not a secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_secret_new() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_enqueue(*, project: Project, url: str, secret: str, event: str, payload: dict[str, Any]) -> Job | None:
    """Queue one delivery (after commit). No URL configured: nothing to send."""
    if not url:
        return None
    return job_enqueue(
        project=project,
        kind="webhook.deliver",
        max_attempts=5,
        params={
            "url": url,
            "secret": secret,
            "event": event,
            "payload": json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),
        },
        message=f"Webhook {event} waiting",
    )


def project_event(*, project: Project, event: str, payload: dict[str, Any]) -> Job | None:
    return webhook_enqueue(
        project=project,
        url=project.webhook_url,
        secret=project.webhook_secret,
        event=event,
        payload={"event": event, "project": project.pk, **payload},
    )


# The URL is secret too: receivers often carry a token in it (chat and ticketing hooks), and
# only the roles that manage connections may see where data goes.
@job_handler("webhook.deliver", secret_params=("secret", "url"))
def deliver(job: Job, ctx: JobContext) -> dict:
    body = json.dumps(job.params["payload"], separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Mlplatform-Event": job.params["event"],
        "X-Mlplatform-Delivery": str(job.pk),
        "X-Mlplatform-Timestamp": timestamp,
        "X-Mlplatform-Signature": sign(job.params.get("secret") or "", timestamp, body),
    }
    try:
        response = netguard.safe_request(
            "POST", job.params["url"], body=body, headers=headers, timeout=10, max_bytes=64 * 1024
        )
    except netguard.Refused as exc:
        raise ValueError(f"Webhook URL refused: {exc}") from None  # permanent: no retry
    except netguard.FetchFailed as exc:
        raise RetryableError(str(exc)) from None
    if not 200 <= response.status < 300:
        raise RetryableError(f"The receiver answered {response.status}.")
    return {"status": response.status}


# --- a project's webhook settings (owners) -----------------------------------------------------


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
    from projects.destinations import destination_audit, destination_check

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
    from projects.destinations import destination_authorise
    from projects.services import audit_record

    destination_authorise(actor=actor, project=project, field="webhook_secret")
    project = Project.objects.select_for_update().get(pk=project.pk)
    secret = webhook_secret_new()
    now = timezone.now()
    project.webhook_secret, project.webhook_secret_created_at, project.webhook_secret_shown_at = secret, now, now
    project.save(update_fields=["webhook_secret", "webhook_secret_created_at", "webhook_secret_shown_at", "updated_at"])
    audit_record(actor=actor, action="project.webhook_secret_rotated", project=project, obj=project)
    return project, secret


@transaction.atomic
def project_webhook_secret_reveal(*, project: Project, actor: Any) -> str | None:
    """The secret, the first time an owner asks for it (a new or migrated project); None after."""
    from projects.destinations import destination_authorise
    from projects.services import audit_record

    destination_authorise(actor=actor, project=project, field="webhook_secret")
    shown = Project.objects.filter(pk=project.pk, webhook_secret_shown_at__isnull=True).update(
        webhook_secret_shown_at=timezone.now()
    )
    if not shown:  # a conditional update: two owners opening the page at once, one sees it
        return None
    project.refresh_from_db()
    audit_record(actor=actor, action="project.webhook_secret_shown", project=project, obj=project)
    return project.webhook_secret


def project_webhook_test(*, project: Project, actor: Any) -> Job:
    """Send a `webhook.ping` event now, to check the receiver and its signature check."""
    from projects.destinations import destination_authorise

    destination_authorise(actor=actor, project=project, field="webhook_url")
    if not project.webhook_url:
        raise InvalidInput("Set a webhook URL first.", field="webhook_url")
    job = project_event(
        project=project, event="webhook.ping", payload={"sent_by": getattr(actor, "username", str(actor))}
    )
    if job is None:  # no URL: checked above
        raise InvalidInput("Set a webhook URL first.", field="webhook_url")
    return job
