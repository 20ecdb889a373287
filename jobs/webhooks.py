"""Signed, retried webhooks for registry, deployment, review and alert events (any app's).

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
import time
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from jobs.models import Job
from jobs.runner import JobContext, RetryableError, job_enqueue, job_handler
from mlplatform import netguard
from mlplatform.errors import InvalidInput
from projects.models import Project
from projects.webhook_settings import destination_authorise


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


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


def project_webhook_test(*, project: Project, actor: Any) -> Job:
    """Send a `webhook.ping` event now, to check the receiver and its signature check."""
    destination_authorise(actor=actor, project=project, field="webhook_url")
    job = project_event(
        project=project, event="webhook.ping", payload={"sent_by": getattr(actor, "username", str(actor))}
    )
    if job is None:  # no URL
        raise InvalidInput("Set a webhook URL first.", field="webhook_url")
    return job


def webhook_deliver(*, job_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """One delivery attempt: POST the signed body; RetryableError on a network fault or a non-2xx
    answer (the job is retried with back-off), ValueError for a URL netguard refuses (no retry)."""
    body = json.dumps(params["payload"], separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Mlplatform-Event": params["event"],
        "X-Mlplatform-Delivery": str(job_id),
        "X-Mlplatform-Timestamp": timestamp,
        "X-Mlplatform-Signature": sign(params.get("secret") or "", timestamp, body),
    }
    try:
        response = netguard.safe_request(
            "POST", params["url"], body=body, headers=headers, timeout=10, max_bytes=64 * 1024
        )
    except netguard.Refused as exc:
        raise ValueError(f"Webhook URL refused: {exc}") from None  # permanent: no retry
    except netguard.FetchFailed as exc:
        raise RetryableError(str(exc)) from None
    if not 200 <= response.status < 300:
        raise RetryableError(f"The receiver answered {response.status}.")
    return {"status": response.status}


# The URL is secret too: receivers often carry a token in it (chat and ticketing hooks), and
# only the roles that manage connections may see where data goes.
@job_handler("webhook.deliver", secret_params=("secret", "url"))
def deliver(job: Job, ctx: JobContext) -> dict:
    return webhook_deliver(job_id=job.pk, params=job.params)
