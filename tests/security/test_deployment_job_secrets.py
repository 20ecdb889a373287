"""Secrets in the deployments' jobs: every job kind the deployments app queues (batch, batch
logging, snapshot, retrain, model preparation, and the webhook deliveries of review decisions,
alerts and deployment events), read back by a viewer through the jobs API and the job pages.

Attack: a viewer lists the project's jobs and opens each one, looking for the project's webhook
signing secret, the webhook URLs (they carry the receiver's token), an API key or a storage path
with credentials.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from deployments.batch.services import batch_start
from deployments.models import Alert, Deployment
from deployments.monitoring.services import alerts as alert_services
from deployments.monitoring.services.config import monitoring_settings
from deployments.monitoring.services.retrain import retrain_start
from deployments.monitoring.services.snapshots import snapshot_request
from deployments.reviews.services import review_decide
from jobs.models import Job
from jobs.redaction import job_public_params, job_public_result
from jobs.runner import get_handler
from jobs.webhooks import project_event
from projects.webhook_settings import project_webhook_rotate, project_webhook_update
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
REVIEW_HOOK = "https://hooks.example.com/decisions?token=review-token-123"
ALERT_HOOK = "https://hooks.example.com/alerts?token=alert-token-456"
PROJECT_HOOK = "https://hooks.example.com/project?token=project-token-789"


def _every_deployment_job(team, world, fake_dns) -> list[str]:
    """Queue one job of each kind (no worker: the rows are what the API shows); the secrets."""
    fake_dns["hooks.example.com"] = ["93.184.216.34"]
    project, owner = team.project, team.owner
    _project, secret = project_webhook_rotate(project=project, actor=owner)
    project_webhook_update(project=project, actor=owner, url=PROJECT_HOOK)
    deployment = Deployment.objects.select_related("project", "model_version").get(pk=world["deployment"].pk)
    deployment.review_webhook_url = REVIEW_HOOK
    deployment.monitoring = {"alert_webhook_url": ALERT_HOOK}
    deployment.save()
    item = world["review"]
    item.mode = "hold"
    item.save(update_fields=["mode"])
    review_decide(item=item, actor=team.reviewer, action="approve")
    alert_services._notify(
        deployment, Alert.objects.get(deployment=deployment), monitoring_settings(deployment), "alert.firing"
    )
    project_event(project=deployment.project, event="deployment.promoted", payload={"deployment": deployment.pk})
    csv = SimpleUploadedFile("rows.csv", b"income,debt,region\n40,10,north\n", content_type="text/csv")
    batch_start(deployment=deployment, actor=owner, upload=csv)
    snapshot_request(deployment=deployment, actor=owner)
    retrain_start(deployment=deployment, actor=owner, reason="drift")
    return [secret, REVIEW_HOOK, ALERT_HOOK, PROJECT_HOOK, "token=", world.api_key, world.api_key[:10] + "x"]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def test_a_viewer_reads_no_secret_from_any_deployment_job(api, team, world, fake_dns):
    secrets = _every_deployment_job(team, world, fake_dns)
    kinds = set(Job.objects.filter(project=team.project).values_list("kind", flat=True))
    assert {"webhook.deliver", "deployment.batch", "monitoring.snapshot", "monitoring.retrain"} <= kinds, kinds
    assert Job.objects.filter(kind="webhook.deliver").count() == 3  # decision, alert, project event
    viewer = api("viewer")
    listed = viewer.get("/api/v1/jobs/", {"project": team.project.pk, "page_size": 100})
    assert listed.status_code == 200
    assert _leaks(json.dumps(listed.json()), secrets) == []
    page = Client()
    assert page.login(username=team.viewer.username, password=PASSWORD)
    for job in Job.objects.filter(project=team.project):
        body = viewer.get(f"/api/v1/jobs/{job.pk}/")
        assert body.status_code == 200
        assert _leaks(body.content.decode(), secrets) == [], job.kind
        html = page.get(f"/jobs/{job.pk}/").content.decode().replace("&amp;", "&")
        assert _leaks(html, secrets) == [], job.kind


def test_the_rows_keep_what_the_worker_needs(team, world, fake_dns):
    """The redaction hides, it does not lose: the worker still reads the URL and the secret."""
    _every_deployment_job(team, world, fake_dns)
    for job in Job.objects.filter(kind="webhook.deliver"):
        assert job.params["secret"].startswith("whsec_") and job.params["url"].startswith("https://hooks.")
        assert set(job_public_params(job)) == {"event", "payload"}
    spec = get_handler("webhook.deliver")
    assert {"secret", "url"} <= spec.secret_params
    for job in Job.objects.exclude(kind="webhook.deliver").filter(project=team.project):
        # No other deployments job carries anything secret: all of it is public, and none of it
        # is a URL or a credential.
        text = json.dumps([job_public_params(job), job_public_result(job)])
        assert "://" not in text and "whsec_" not in text, (job.kind, text)
