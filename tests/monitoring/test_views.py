"""Monitoring UI: the dashboard (server side), its actions and their access rules; one browser walk."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Alert, Deployment
from deployments.monitoring.services import snapshots
from jobs.models import Job
from tests.conftest import login
from tests.factories import PASSWORD
from tests.monitoring.helpers import log_predictions, make_deployment


def page_url(d: Deployment, tail: str = "") -> str:
    return f"/projects/{d.project_id}/deployments/{d.pk}/monitoring/{tail}"


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


@pytest.mark.django_db
def test_dashboard_renders_from_snapshots_only(client, team, deployment):
    log_predictions(deployment, n=300, shift=2.0, seed=1)
    snapshots.snapshot_compute(deployment=deployment)
    client.login(username=team.viewer.username, password=PASSWORD)
    with CaptureQueriesContext(connection) as queries:
        res = client.get(page_url(deployment))
    assert res.status_code == 200
    html = res.content.decode()
    assert 'id="drift"' in html and 'data-feature="x0"' in html and "monitoring-data" in html
    assert "Compute snapshot now" not in html  # viewers see no actions
    assert not any("deployments_prediction" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db
def test_dashboard_access(client, team, deployment):
    client.login(username=team.outsider.username, password=PASSWORD)
    assert client.get(page_url(deployment)).status_code == 404
    # The deployment must belong to the project in the URL.
    assert client.get(f"/projects/{team.other_project.pk}/deployments/{deployment.pk}/monitoring/").status_code == 404


@pytest.mark.django_db
def test_actions_require_manage_deployments(client, team, deployment):
    log_predictions(deployment, n=300, shift=2.0, seed=2)
    snapshots.snapshot_compute(deployment=deployment)
    alert = Alert.objects.get(deployment=deployment, key="drift:x0")
    client.login(username=team.reviewer.username, password=PASSWORD)
    assert client.post(page_url(deployment, "snapshot/")).status_code == 403
    assert client.post(page_url(deployment, "retrain/")).status_code == 403
    assert client.post(page_url(deployment, f"alerts/{alert.pk}/acknowledge/")).status_code == 403
    assert client.post(page_url(deployment, "settings/"), {"psi_warn": "0.1"}).status_code == 403
    assert not Job.objects.filter(kind__startswith="monitoring.").exists()


@pytest.mark.django_db
def test_settings_form_bad_input_changes_nothing(client, team, deployment):
    client.login(username=team.editor.username, password=PASSWORD)
    res = client.post(
        page_url(deployment, "settings/"),
        {"psi_warn": "0.5", "psi_alert": "0.2", "interval_minutes": "60", "alert_email": "", "alert_webhook_url": ""},
        follow=True,
    )
    assert "psi_warn" in res.content.decode()
    deployment.refresh_from_db()
    assert deployment.monitoring == {}
    client.post(
        page_url(deployment, "settings/"),
        {
            "psi_warn": "0.05",
            "psi_alert": "0.3",
            "interval_minutes": "15",
            "alert_email": "a@b.c",
            "auto_retrain": "on",
        },
    )
    deployment.refresh_from_db()
    assert deployment.monitoring["interval_minutes"] == 15 and deployment.auto_retrain


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_dashboard_drift_overlay_and_acknowledge(page, team):
    deployment = make_deployment(team.project, team.owner)
    log_predictions(deployment, n=300, shift=2.0, new_color=True, seed=3)
    snapshots.snapshot_compute(deployment=deployment)
    login(page, team.editor.username)
    page.goto(f"/projects/{team.project.pk}/")
    page.click("[data-stage=monitor]")
    page.wait_for_url(re.compile(r"/monitoring/$"))
    assert page.get_attribute("#health", "data-state") == "critical"
    page.wait_for_selector("#chart-traffic .main-svg")
    page.click("#drift tr[data-feature=color]")
    page.wait_for_selector("#chart-overlay .gtitle:text-is('color')")  # no wait_for_function: the CSP forbids eval
    assert page.locator("#drift tr[data-feature=x0] .badge").text_content() == "alert"
    page.locator("#alerts tr[data-key='drift:x0'] button.ack").click()
    page.wait_for_selector("#alerts tr[data-key='drift:x0'] >> text=eddie")
    assert Alert.objects.get(deployment=deployment, key="drift:x0").acknowledged_by_id == team.editor.pk
