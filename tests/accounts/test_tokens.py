from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.keys import hash_key
from accounts.models import ApiToken
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_obtain_token_with_password(team):
    response = APIClient().post("/api/v1/auth/token/", {"username": "olivia", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    key = response.data["token"]
    token = ApiToken.objects.get(user=team.owner)
    assert token.key_hash == hash_key(key)
    assert key not in (token.key_hash, token.prefix)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/projects/").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [({"username": "olivia", "password": "wrong"}, "password"), ({"username": "olivia"}, "password"), ({}, "username")],
)
def test_obtain_token_rejects_bad_credentials(team, body, field):
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 400
    assert field in response.data["errors"]
    assert not ApiToken.objects.exists()


def test_revoked_token_is_refused(api, team):
    client = api("owner")
    token = ApiToken.objects.get(user=team.owner)
    assert client.get("/api/v1/tokens/").status_code == 200
    assert client.post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200
    assert client.get("/api/v1/projects/").status_code == 401


def test_tokens_list_only_own(api, team):
    api("owner")
    api("editor")
    response = api("editor").get("/api/v1/tokens/")
    assert response.status_code == 200
    assert len(response.data["results"]) == 1
    other = ApiToken.objects.get(user=team.owner)
    assert api("editor").post(f"/api/v1/tokens/{other.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get(pk=other.pk).revoked_at is None


def test_garbage_token_header_is_401(team):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/v1/projects/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Token a b")
    assert client.get("/api/v1/projects/").status_code == 401


def test_inactive_user_token_refused(api, team):
    client = api("viewer")
    team.viewer.is_active = False
    team.viewer.save()
    assert client.get("/api/v1/projects/").status_code == 401
