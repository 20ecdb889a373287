"""Where a deployment's data goes is an owner's decision: the review-decision webhook and the
alert webhook, over the API and the pages.

Attacks: an editor (who may manage deployments) points either webhook at their own server, by
the API or by adding the field to the settings form; an owner is tricked into an internal address
(loopback, private, link-local metadata, IPv4-mapped and 6to4 forms, a name that resolves to
loopback); a viewer reads the URL (it often carries the receiver's token); a delivery signed with
a secret an editor could read.
"""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.models import Alert, Deployment
from deployments.monitoring.services import alerts as alert_services
from deployments.monitoring.services.config import monitoring_settings
from jobs.models import Job
from projects.models import AuditEvent, Project
from projects.webhook_settings import project_webhook_rotate
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
PUBLIC = "https://hooks.example.com/receive?token=abc"
EVIL = "https://attacker.example.net/collect"

ENDPOINTS = {
    "review_webhook_url": "/api/v1/deployments/{pk}/review-policy/",
    "alert_webhook_url": "/api/v1/deployments/{pk}/monitoring/",
}


def _url_of(deployment: Deployment, field: str) -> str:
    deployment.refresh_from_db()
    if field == "review_webhook_url":
        return deployment.review_webhook_url
    return monitoring_settings(deployment)["alert_webhook_url"]


def _read(body: dict, field: str):
    return body[field] if field == "review_webhook_url" else body["settings"][field]


@pytest.fixture
def names(fake_dns):
    fake_dns["hooks.example.com"] = ["93.184.216.34"]
    fake_dns["attacker.example.net"] = ["93.184.216.35"]
    fake_dns["rebind.example.com"] = ["127.0.0.1"]
    return fake_dns


@pytest.mark.parametrize("field", list(ENDPOINTS))
def test_only_owners_change_a_deployment_webhook(api, team, world, names, field):
    deployment = world["deployment"]
    url = ENDPOINTS[field].format(pk=deployment.pk)
    assert api("outsider").patch(url, {field: EVIL}, format="json").status_code == 404
    for role in ("editor", "reviewer", "viewer"):
        r = api(role).patch(url, {field: EVIL}, format="json")
        assert r.status_code == 403, (role, r.data)
        if role == "editor":  # the role may manage deployments: the refusal names the field
            assert field in r.json()["errors"], r.json()
    assert _url_of(deployment, field) == ""
    assert not AuditEvent.objects.filter(action="destination.changed").exists()

    r = api("owner").patch(url, {field: PUBLIC}, format="json")
    assert r.status_code == 200, r.data
    assert _url_of(deployment, field) == PUBLIC
    r = api("owner").patch(url, {field: "https://hooks.example.com/v2"}, format="json")
    assert r.status_code == 200, r.data
    changes = [
        e.data for e in AuditEvent.objects.filter(action="destination.changed", project=team.project).order_by("pk")
    ]
    assert changes == [
        {"field": field, "from": "", "to": PUBLIC},
        {"field": field, "from": PUBLIC, "to": "https://hooks.example.com/v2"},
    ]
    assert all(e.actor_id == team.owner.pk for e in AuditEvent.objects.filter(action="destination.changed"))


@pytest.mark.parametrize("field", list(ENDPOINTS))
def test_an_editor_sending_the_current_url_back_is_not_refused(api, team, world, names, field):
    deployment = world["deployment"]
    url = ENDPOINTS[field].format(pk=deployment.pk)
    assert api("owner").patch(url, {field: PUBLIC}, format="json").status_code == 200
    other = {"review_sla_minutes": 45} if field == "review_webhook_url" else {"interval_minutes": 15}
    r = api("editor").patch(url, {field: PUBLIC, **other}, format="json")
    assert r.status_code == 200, r.data
    r = api("editor").patch(url, {field: ""}, format="json")  # clearing is a change too
    assert r.status_code == 403 and _url_of(deployment, field) == PUBLIC


@pytest.mark.parametrize("field", list(ENDPOINTS))
@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:6379/",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://rebind.example.com/hook",
        "https://user:pass@hooks.example.com/",
        "gopher://hooks.example.com/",
        "https://hooks.example.com/" + "x" * 300,
    ],
)
def test_an_internal_or_malformed_destination_is_refused_at_save(api, team, world, names, field, target):
    deployment = world["deployment"]
    r = api("owner").patch(ENDPOINTS[field].format(pk=deployment.pk), {field: target}, format="json")
    assert r.status_code == 400, r.data
    assert field in r.json()["errors"]
    assert _url_of(deployment, field) == ""
    assert not AuditEvent.objects.filter(action="destination.changed").exists()


@pytest.mark.parametrize("field", list(ENDPOINTS))
def test_only_owners_read_a_deployment_webhook(api, team, world, names, field):
    deployment = world["deployment"]
    url = ENDPOINTS[field].format(pk=deployment.pk)
    api("owner").patch(url, {field: PUBLIC}, format="json")
    assert _read(api("owner").get(url).json(), field) == PUBLIC
    for role in ("editor", "reviewer", "viewer"):
        body = api(role).get(url).json()
        assert _read(body, field) is None and PUBLIC not in str(body), role
        assert "webhook_secret" not in str(body)


def _page_client(user) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def test_an_editor_cannot_slip_the_url_into_the_settings_forms(team, world, names):
    deployment = world["deployment"]
    editor = _page_client(team.editor)
    base = f"/projects/{team.project.pk}/deployments/{deployment.pk}/"
    form = {"psi_warn": "0.1", "psi_alert": "0.2", "interval_minutes": "60", "alert_email": ""}
    editor.post(base + "monitoring/settings/", {**form, "alert_webhook_url": EVIL})
    reviews = f"/projects/{team.project.pk}/reviews/health/{deployment.pk}/"
    editor.post(reviews, {"review_webhook_url": EVIL})
    deployment.refresh_from_db()
    assert deployment.review_webhook_url == "" and monitoring_settings(deployment)["alert_webhook_url"] == ""
    # The pages show editors no URL field (and no URL), owners both.
    for path in (base + "monitoring/", reviews):
        page = editor.get(path).content.decode()
        assert 'name="alert_webhook_url"' not in page and 'name="review_webhook_url"' not in page, path
    owner = _page_client(team.owner)
    for path, name in ((base + "monitoring/", "alert_webhook_url"), (reviews, "review_webhook_url")):
        page = owner.get(path)
        assert page.status_code == 200 and f'name="{name}"' in page.content.decode(), path
    owner.post(base + "monitoring/settings/", {**form, "alert_webhook_url": PUBLIC})
    assert monitoring_settings(Deployment.objects.get(pk=deployment.pk))["alert_webhook_url"] == PUBLIC
    assert PUBLIC not in editor.get(base + "monitoring/").content.decode().replace("&amp;", "&")


def test_alerts_and_decisions_are_signed_with_the_project_secret(api, team, world, names):
    deployment = world["deployment"]
    _project, secret = project_webhook_rotate(project=team.project, actor=team.owner)
    api("owner").patch(f"/api/v1/deployments/{deployment.pk}/monitoring/", {"alert_webhook_url": PUBLIC}, format="json")
    deployment = Deployment.objects.select_related("project").get(pk=deployment.pk)
    alert = Alert.objects.get(deployment=deployment)
    alert_services._notify(deployment, alert, monitoring_settings(deployment), "alert.firing")
    job = Job.objects.get(kind="webhook.deliver")
    assert secret.startswith("whsec_") and Project.objects.get(pk=team.project.pk).webhook_secret == secret
    assert job.params["secret"] == secret and job.params["url"] == PUBLIC
    assert not hasattr(deployment, "webhook_secret")
