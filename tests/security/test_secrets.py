"""Secrets stay with their owners; where data goes is an owner's decision.

Attacks: reading a webhook signing secret back from the project, the webhook settings, job
params (every role, API and page), results and the audit log; changing a webhook URL as an
editor; forging or replaying a delivery against a receiver that uses the README's check.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from jobs.models import Job
from projects.models import AuditEvent, Project
from tests.conftest import wait_for_job
from tests.factories import PASSWORD
from tests.security.outbound_helpers import Remote

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_this-is-the-deployment-secret-0123456789"


def readme_verifier():
    """The verification example from the README, executed as written."""
    text = README.read_text()
    section = text[text.index("### Verifying webhooks") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_mlplatform_webhook"]


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver(settings):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    httpd.received = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    yield httpd
    httpd.shutdown()


def _everything_an_api_role_can_read(base: str, team, job: Job) -> dict[str, str]:
    texts = {}
    for role in ("owner", "editor", "reviewer", "viewer"):
        remote = Remote(base, team.user(role))
        texts[f"{role} job list"] = remote.get(f"/api/v1/jobs/?project={team.project.pk}").text
        texts[f"{role} job detail"] = remote.get(f"/api/v1/jobs/{job.pk}/").text
        texts[f"{role} project"] = remote.get(f"/api/v1/projects/{team.project.pk}/").text
    owner = Remote(base, team.owner)
    texts["audit"] = owner.get(f"/api/v1/projects/{team.project.pk}/audit/").text
    texts["webhook settings"] = owner.get(f"/api/v1/projects/{team.project.pk}/webhook/").text
    client = Client()
    client.login(username=team.owner.username, password=PASSWORD)
    texts["job page"] = client.get(f"/jobs/{job.pk}/").content.decode()
    texts["project jobs page"] = client.get(f"/projects/{team.project.pk}/jobs/").content.decode()
    return texts


def test_a_queued_deliverys_secret_is_shown_to_no_role_anywhere(live_server, team):
    # Queued, not delivered: the worker still needs the secret, and the row holds it. (The row
    # webhook_enqueue writes, left unpublished so that no worker of the session delivers it.)
    job = Job.objects.create(
        project=team.project,
        kind="webhook.deliver",
        params={"url": "https://hooks.example.invalid/x", "secret": SECRET, "event": "review.decided", "payload": {}},
    )
    assert Job.objects.get(pk=job.pk).params["secret"] == SECRET
    leaks = [
        where for where, text in _everything_an_api_role_can_read(live_server.url, team, job).items() if SECRET in text
    ]
    assert leaks == []
    detail = Remote(live_server.url, team.owner).get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["params"]["event"] == "review.decided" and set(detail["params"]) == {"event", "payload"}
    url_leaks = [
        w
        for w, t in _everything_an_api_role_can_read(live_server.url, team, job).items()
        if "hooks.example.invalid" in t
    ]
    assert url_leaks == []  # the receiver's URL is for the roles that manage connections


def _create_project(base: str, user, **extra) -> dict:
    r = Remote(base, user).post("/api/v1/projects/", {"name": "Hooks", "task_type": "classification", **extra})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.worker
def test_signed_delivery_checks_out_with_the_readme_example_and_forgeries_do_not(live_server, team, worker, receiver):
    verify = readme_verifier()
    created = _create_project(live_server.url, team.owner)
    first_secret = created["webhook_secret"]
    assert first_secret.startswith("whsec_") and len(first_secret) > 40
    owner = Remote(live_server.url, team.owner)
    pk = created["id"]
    url = f"http://localhost:{receiver.server_address[1]}/hook"
    assert owner.patch(f"/api/v1/projects/{pk}/webhook/", {"url": url}).json()["url"] == url
    rotated = owner.post(f"/api/v1/projects/{pk}/webhook/rotate/").json()
    secret = rotated["secret"]
    assert secret != first_secret and rotated["url"] == url
    sent = owner.post(f"/api/v1/projects/{pk}/webhook/test/")
    assert sent.status_code == 202 and sent.headers["Location"] == f"/api/v1/jobs/{sent.json()['job']}/"
    job = wait_for_job(sent.json()["job"])
    assert job.status == "succeeded", job.error
    headers, body = receiver.received[-1]
    assert json.loads(body)["event"] == "webhook.ping"
    assert verify(secret, headers, body)
    assert not verify(first_secret, headers, body)  # the rotated-out secret no longer signs
    assert not verify(secret, headers, body.replace(b"ping", b"pong"))  # a tampered body
    stale = {**dict(headers.items()), "X-Mlplatform-Timestamp": str(int(time.time()) - 3600)}
    assert not verify(secret, stale, body)  # a replay an hour later (the signature is then wrong too)
    # Delivered: the job row no longer holds the secret, and nothing ever showed either one.
    assert {"secret", "url"}.isdisjoint(Job.objects.get(pk=job.pk).params)
    project = Project.objects.get(pk=pk)
    readable = _everything_an_api_role_can_read(live_server.url, _team_for(team, project), job)
    assert [w for w, text in readable.items() if secret in text or first_secret in text] == []
    actions = list(AuditEvent.objects.filter(project_id=pk).values_list("action", flat=True))
    assert "project.webhook_secret_rotated" in actions and "destination.changed" in actions


def _team_for(team, project):
    """The same people, looking at another project (the owner made it; others are not members)."""
    from tests.factories import add_member

    for role in ("editor", "reviewer", "viewer"):
        add_member(project, team.user(role), role)
    team.project = project
    return team


def test_the_secret_is_shown_once_then_only_rotated(live_server, team):
    created = _create_project(live_server.url, team.owner)
    owner = Remote(live_server.url, team.owner)
    pk = created["id"]
    assert "webhook_secret" not in owner.get(f"/api/v1/projects/{pk}/").json()
    settings_body = owner.get(f"/api/v1/projects/{pk}/webhook/").json()
    assert set(settings_body) == {"url", "secret_set", "secret_created_at", "secret_shown"}
    assert settings_body["secret_shown"] and settings_body["secret_set"]
    assert created["webhook_secret"] not in owner.get(f"/api/v1/projects/{pk}/webhook/").text
    # The page does not show it again either (it was shown in the API's response).
    client = Client()
    client.login(username=team.owner.username, password=PASSWORD)
    page = client.get(f"/projects/{pk}/webhook/").content.decode()
    assert created["webhook_secret"] not in page and 'id="reveal-secret"' not in page
    revealed = client.post(f"/projects/{pk}/webhook/", {"action": "reveal"}).content.decode()
    assert created["webhook_secret"] not in revealed


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "webhook/", None),
        ("patch", "webhook/", {"url": "https://hooks.example.invalid/x"}),
        ("post", "webhook/rotate/", None),
        ("post", "webhook/test/", None),
    ],
)
def test_webhook_endpoints_are_for_owners(api, team, method, path, body):
    before = Project.objects.get(pk=team.project.pk)
    url = f"/api/v1/projects/{team.project.pk}/{path}"
    assert getattr(api("outsider"), method)(url, body, format="json").status_code == 404
    for role in ("editor", "reviewer", "viewer"):
        r = getattr(api(role), method)(url, body, format="json")
        assert r.status_code == 403, (role, r.data)
    after = Project.objects.get(pk=team.project.pk)
    assert (after.webhook_url, after.webhook_secret) == (before.webhook_url, before.webhook_secret)
    assert not Job.objects.filter(kind="webhook.deliver").exists()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "http://127.0.0.1:8000/",
        "http://[::1]/",
        "https://u:p@hooks.example.com/",
        "x" * 300,
    ],
)
def test_a_bad_webhook_url_is_400_naming_it_and_changes_nothing(api, team, url):
    r = api("owner").patch(f"/api/v1/projects/{team.project.pk}/webhook/", {"url": url}, format="json")
    assert r.status_code == 400 and "url" in r.data["errors"], r.data
    assert Project.objects.get(pk=team.project.pk).webhook_url == ""
    assert not AuditEvent.objects.filter(action="destination.changed").exists()


def test_only_owners_change_where_data_goes_and_every_change_is_audited(api, team):
    pk = team.project.pk
    r = api("editor").patch(f"/api/v1/projects/{pk}/", {"webhook_url": "https://evil.example.com/grab"}, format="json")
    assert r.status_code == 403 and Project.objects.get(pk=pk).webhook_url == ""
    # An editor still edits the problem statement, echoing back the null it reads for the URL.
    read = api("editor").get(f"/api/v1/projects/{pk}/").data
    assert read["webhook_url"] is None
    r = api("editor").patch(f"/api/v1/projects/{pk}/", {"objective": "new", "webhook_url": None}, format="json")
    assert r.status_code == 200, r.data
    for url in ("https://hooks.example.com/a", "https://hooks.example.com/b", ""):
        assert api("owner").patch(f"/api/v1/projects/{pk}/", {"webhook_url": url}, format="json").status_code == 200
    changes = list(
        AuditEvent.objects.filter(project_id=pk, action="destination.changed")
        .order_by("id")
        .values_list("data", flat=True)
    )
    assert [(c["from"], c["to"]) for c in changes] == [
        ("", "https://hooks.example.com/a"),
        ("https://hooks.example.com/a", "https://hooks.example.com/b"),
        ("https://hooks.example.com/b", ""),
    ]
    assert all(c["field"] == "webhook_url" for c in changes)
    assert api("owner").get(f"/api/v1/projects/{pk}/").data["webhook_url"] == ""


def test_the_destination_helper_guards_a_deployments_webhook_in_one_call(team):
    # What deployments' review and alert webhooks will call (one line each): an editor may
    # manage the deployment but not point its data somewhere else; an owner may, audited.
    from mlplatform.errors import PermissionDenied
    from projects.destinations import destination_change
    from tests.security.world import build_world

    deployment = build_world(team.project, team.owner)["deployment"]
    with pytest.raises(PermissionDenied) as denied:
        destination_change(
            actor=team.editor,
            project=team.project,
            obj=deployment,
            field="review_webhook_url",
            old="",
            new="https://evil.example.com/x",
        )
    assert denied.value.field == "review_webhook_url"
    clean = destination_change(
        actor=team.owner,
        project=team.project,
        obj=deployment,
        field="review_webhook_url",
        old="",
        new=" https://loans.example.com/decisions ",
    )
    assert clean == "https://loans.example.com/decisions"
    event = AuditEvent.objects.get(action="destination.changed")
    assert event.object_type == "deployment" and event.object_id == str(deployment.pk)
    assert event.data == {"field": "review_webhook_url", "from": "", "to": clean}


def test_existing_rows_are_cleaned_by_the_migrations(team):
    import importlib

    from django.apps import apps

    forget = importlib.import_module("jobs.migrations.0002_forget_webhook_secrets").forget
    give = importlib.import_module("projects.migrations.0003_webhook_secrets").give_secrets
    done = Job.objects.create(
        project=team.project, kind="webhook.deliver", status="succeeded", params={"secret": SECRET, "url": "u"}
    )
    waiting = Job.objects.create(
        project=team.project, kind="webhook.deliver", status="queued", params={"secret": SECRET}
    )
    Project.objects.filter(pk=team.project.pk).update(webhook_secret="", webhook_secret_created_at=None)
    forget(apps, None)
    give(apps, None)
    assert Job.objects.get(pk=done.pk).params == {}
    assert Job.objects.get(pk=waiting.pk).params["secret"] == SECRET  # still needed to sign
    project = Project.objects.get(pk=team.project.pk)
    assert project.webhook_secret.startswith("whsec_") and project.webhook_secret_shown_at is None


@pytest.mark.browser
def test_owner_sees_the_secret_once_on_the_webhook_page_and_rotates_it(page, team):
    from tests.conftest import login, screenshots

    Project.objects.filter(pk=team.project.pk).update(
        webhook_secret_shown_at=None, webhook_secret="whsec_from-migration-1"
    )
    login(page, team.owner.username)
    page.goto(f"/projects/{team.project.pk}/webhook/")
    assert page.locator("#webhook-secret-value").count() == 0  # opening the page spends nothing
    page.click("#reveal-secret")
    assert page.text_content("#webhook-secret-value").strip() == "whsec_from-migration-1"
    assert page.locator("#reveal-secret").count() == 0
    page.reload()
    assert page.locator("#webhook-secret-value").count() == 0
    page.fill("#id_url", "http://127.0.0.1/steal")
    page.click("#webhook-url button[type=submit]")
    expect(page.locator("#webhook-url")).to_contain_text("private, loopback")
    page.fill("#id_url", "https://hooks.example.invalid/mlp")
    page.click("#webhook-url button[type=submit]")
    assert page.input_value("#id_url") == "https://hooks.example.invalid/mlp"
    page.click("#rotate-secret")
    new = page.text_content("#webhook-secret-value").strip()
    screenshots(page, "webhook")
    assert new.startswith("whsec_") and new != "whsec_from-migration-1"
    assert Project.objects.get(pk=team.project.pk).webhook_secret == new
    # An editor neither sees the page nor the link to it.
    page.context.clear_cookies()
    login(page, team.editor.username)
    page.goto(f"/projects/{team.project.pk}/")
    assert page.locator("nav.sub a", has_text="Webhook").count() == 0
    response = page.goto(f"/projects/{team.project.pk}/webhook/")
    assert response.status == 403 and new not in page.content()
