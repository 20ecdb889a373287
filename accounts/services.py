from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.keys import hash_key, new_key
from accounts.models import ApiToken
from mlplatform.errors import InvalidInput

MAX_TOKEN_DAYS = 3650


def token_expiry(*, expires_in_days: Any = None, expires_at: Any = None) -> datetime | None:
    """When a new token expires (None: never), from at most one of the two ways to say it.

    `API_TOKEN_MAX_DAYS` (operators) caps every token: without an expiry a token gets the cap.
    """
    now = timezone.now()
    cap = settings.API_TOKEN_MAX_DAYS
    if expires_in_days not in (None, "") and expires_at not in (None, ""):
        raise InvalidInput("Give expires_in_days or expires_at, not both.", field="expires_at")
    when: datetime | None = None
    if expires_in_days not in (None, ""):
        try:
            days = int(expires_in_days)
        except (TypeError, ValueError):
            raise InvalidInput("A whole number of days.", field="expires_in_days") from None
        if isinstance(expires_in_days, bool) or not 1 <= days <= MAX_TOKEN_DAYS:
            raise InvalidInput(f"Between 1 and {MAX_TOKEN_DAYS} days.", field="expires_in_days")
        when = now + timedelta(days=days)
    elif expires_at not in (None, ""):
        if not isinstance(expires_at, datetime):
            raise InvalidInput("A date and time (ISO 8601).", field="expires_at")
        if timezone.is_naive(expires_at):
            expires_at = timezone.make_aware(expires_at, timezone.utc)
        if expires_at <= now:
            raise InvalidInput("The expiry must be in the future.", field="expires_at")
        if expires_at > now + timedelta(days=MAX_TOKEN_DAYS):
            raise InvalidInput(f"At most {MAX_TOKEN_DAYS} days from now.", field="expires_at")
        when = expires_at
    if cap:
        limit = now + timedelta(days=cap)
        if when is None:
            return limit
        if when > limit + timedelta(seconds=1):
            field = "expires_in_days" if expires_in_days not in (None, "") else "expires_at"
            raise InvalidInput(f"Tokens expire within {cap} days here (API_TOKEN_MAX_DAYS).", field=field)
    return when


@transaction.atomic
def token_create(*, user: Any, name: str = "api", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns it with the plain key, which is never stored."""
    if expires_at is None:
        expires_at = token_expiry()  # the operators' cap, if any
    key = new_key("mlp")
    token = ApiToken.objects.create(
        user=user, name=(name or "api")[:80], prefix=key[:10], key_hash=hash_key(key), expires_at=expires_at
    )
    return token, key


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_lookup(key: str) -> ApiToken | None:
    """The unrevoked token of an active user with this key, expired or not (the caller says which)."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_key(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or token.is_expired:
        return token
    now = timezone.now()
    # Record use at most once a minute: no write per request on the hot path.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_authenticate(key: str) -> ApiToken | None:
    """The usable token with this key (None: unknown, revoked or expired)."""
    token = token_lookup(key)
    return token if token is not None and not token.is_expired else None
