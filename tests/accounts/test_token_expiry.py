"""Optional expiry of API tokens: chosen at creation, refused with a clear 401 once past."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _obtain(**extra):
    return APIClient().post("/api/v1/auth/token/", {"username": "olivia", "password": PASSWORD, **extra}, format="json")


def test_a_token_with_expires_in_days_works_until_then_and_says_why_after(team):
    r = _obtain(expires_in_days=7)
    assert r.status_code == 200, r.data
    token = ApiToken.objects.get(user=team.owner)
    assert abs((token.expires_at - timezone.now()) - timedelta(days=7)) < timedelta(minutes=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {r.data['token']}")
    assert client.get("/api/v1/projects/").status_code == 200
    listed = client.get("/api/v1/tokens/").data["results"][0]
    assert listed["expires_at"] is not None
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = client.get("/api/v1/projects/")
    assert refused.status_code == 401
    assert "expired" in refused.data["detail"] and "create a new one" in refused.data["detail"]


def test_expires_at_and_no_expiry(team):
    when = timezone.now() + timedelta(days=30)
    r = _obtain(expires_at=when.isoformat())
    assert r.status_code == 200 and abs(ApiToken.objects.get().expires_at - when) < timedelta(seconds=1)
    r = _obtain()
    assert r.status_code == 200 and r.data["expires_at"] is None


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 5000}, "expires_in_days"),
        ({"expires_in_days": "soon"}, "expires_in_days"),
        ({"expires_at": "yesterday"}, "expires_at"),
        ({"expires_at": (timezone.now() - timedelta(days=1)).isoformat()}, "expires_at"),
        ({"expires_at": (timezone.now() + timedelta(days=4000)).isoformat()}, "expires_at"),
        ({"expires_in_days": 3, "expires_at": (timezone.now() + timedelta(days=3)).isoformat()}, "expires_at"),
    ],
)
def test_bad_expiry_is_400_naming_the_field_and_creates_nothing(team, extra, field):
    r = _obtain(**extra)
    assert r.status_code == 400 and field in r.data["errors"], r.data
    assert not ApiToken.objects.exists()


def test_operators_cap_every_tokens_lifetime(team, settings):
    settings.API_TOKEN_MAX_DAYS = 30
    r = _obtain()
    assert r.status_code == 200
    assert abs(ApiToken.objects.get().expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    r = _obtain(expires_in_days=90)
    assert r.status_code == 400 and "API_TOKEN_MAX_DAYS" in r.data["errors"]["expires_in_days"][0]


def test_tokens_cannot_be_minted_with_a_token(api, team):
    # A stolen short-lived token must not buy a long-lived one: no create endpoint takes a token.
    assert api("owner").post("/api/v1/tokens/", {"name": "forever"}, format="json").status_code == 405
    assert ApiToken.objects.filter(user=team.owner).count() == 1


def test_tokens_page_refuses_a_bad_expiry(team, client):
    client.login(username=team.owner.username, password=PASSWORD)
    r = client.post("/account/tokens/", {"name": "x", "expires_in_days": "0"})
    assert r.status_code == 200 and "greater than or equal to 1" in r.content.decode()
    assert not ApiToken.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_tokens_page_creates_an_expiring_token_and_shows_expiry(page, team):
    from tests.conftest import login, screenshots

    login(page, team.owner.username)
    page.goto("/account/tokens/")
    page.fill("#token-name", "notebook")
    page.fill("#token-expires", "14")
    page.click("#create-token button[type=submit]")
    assert page.text_content("#new-token-key").strip().startswith("mlp_")
    token = ApiToken.objects.get(user=team.owner, name="notebook")
    assert token.expires_at is not None
    row = page.locator("#tokens tbody tr", has_text="notebook")
    assert token.expires_at.strftime("%Y-%m-%d") in row.text_content()
    ApiToken.objects.create(
        user=team.owner,
        name="old-ci",
        prefix="mlp_oldold",
        key_hash="0" * 64,
        expires_at=timezone.now() - timedelta(days=1),
    )
    page.goto("/account/tokens/")
    assert "expired" in page.locator("#tokens tbody tr", has_text="old-ci").text_content()
    screenshots(page, "tokens")
