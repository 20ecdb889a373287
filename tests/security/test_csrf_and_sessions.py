"""CSRF on session-authenticated unsafe requests; removed members lose access at once."""

from __future__ import annotations

import pytest
from django.test import Client

from projects.models import Membership
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _session(username: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=username, password=PASSWORD)
    return client


def test_api_post_with_session_but_no_csrf_token_is_403(team):
    client = _session("olivia")
    response = client.post(
        "/api/v1/projects/", {"name": "x", "task_type": "classification"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_cross_site_text_plain_post_is_403(team):
    client = _session("olivia")
    response = client.post(
        f"/api/v1/projects/{team.project.pk}/members/",
        data='{"username": "oscar", "role": "owner"}',
        content_type="text/plain",
        HTTP_ORIGIN="https://evil.example",
        HTTP_REFERER="https://evil.example/",
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(project=team.project, user=team.outsider).exists()


def test_ui_form_post_without_csrf_is_403(team):
    client = _session("olivia")
    response = client.post(f"/projects/{team.project.pk}/members/", {"username": "oscar", "role": "owner"})
    assert response.status_code == 403
    assert not Membership.objects.filter(project=team.project, user=team.outsider).exists()


def test_removed_member_session_is_refused_on_next_request(team, api):
    client = _session("eddie")
    assert client.get(f"/projects/{team.project.pk}/").status_code == 200
    assert client.get(f"/api/v1/projects/{team.project.pk}/").status_code == 200
    Membership.objects.filter(project=team.project, user=team.editor).delete()
    assert client.get(f"/projects/{team.project.pk}/").status_code == 404
    assert client.get(f"/api/v1/projects/{team.project.pk}/").status_code == 404


def test_logout_requires_post(team):
    client = _session("olivia")
    assert client.get("/logout/").status_code == 405
