from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.keys import hash_key, new_key
from accounts.models import ApiToken


@transaction.atomic
def token_create(*, user: Any, name: str = "api") -> tuple[ApiToken, str]:
    """Create a token; returns it with the plain key, which is never stored."""
    key = new_key("mlp")
    token = ApiToken.objects.create(user=user, name=(name or "api")[:80], prefix=key[:10], key_hash=hash_key(key))
    return token, key


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_authenticate(key: str) -> ApiToken | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_key(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Record use at most once a minute: no write per request on the hot path.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
