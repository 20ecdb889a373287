"""Deployment API keys on the hot path: authentication from a per-process cache, the serving
generation that invalidates it everywhere, the per-minute rate limit, and `KeyGate.admit`, which
does the rate limit, the freshness check and the prediction log's push in one atomic Redis call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import ApiKey
from deployments.serving import prediction_log
from mlplatform import redis as platform_redis
from mlplatform.errors import Unavailable

logger = logging.getLogger(__name__)

SERVING_GENERATION = "{mlp}:serving:generation"


class Stale(Exception):
    """The cached key or its deployment changed since this request read them: authenticate again."""


class RateLimited(Exception):
    def __init__(self, retry_after: int, limit: int):
        super().__init__(f"Rate limit of {limit} requests per minute reached.")
        self.retry_after = retry_after


# Count the call in its key's minute, check that no deployment or key changed since the caller
# read them (the serving generation), and only then queue its prediction rows: one atomic call.
_ADMIT_LUA = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {count, -1} end
if count > tonumber(ARGV[2]) then return {count, 0} end
if #ARGV > 2 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 3)) end
return {count, 1}
"""


@dataclass
class KeyGate:
    """An API key read from this process's cache (or the database) at a known serving generation."""

    api_key: ApiKey
    generation: bytes

    def admit(self, encoded: list[str]) -> None:
        """Count the call, check the key and deployment are unchanged, queue `encoded`: one round trip.

        Raises Stale (changed, or Redis unreachable: authenticate again, from the database) or
        RateLimited. When it returns, the rows are in the prediction log's queue.
        """
        now = time.time()
        try:
            _count, verdict = platform_redis.client().eval(
                _ADMIT_LUA,
                3,
                _rate_key(self.api_key.pk, int(now // 60)),
                SERVING_GENERATION,
                prediction_log.QUEUE,
                self.generation,
                self.api_key.rate_per_minute,
                *encoded,
            )
        except Exception as exc:  # Redis away: the caller starts over without the cache
            raise Stale from exc
        if verdict == -1:
            raise Stale
        if verdict == 0:
            raise RateLimited(max(1, 60 - int(now % 60)), self.api_key.rate_per_minute)
        if encoded:
            prediction_log.pushed(encoded)

    def fresh(self) -> bool:
        """Is what the request read still current? (Checked before refusing a call.)"""
        try:
            return platform_redis.client().get(SERVING_GENERATION) == self.generation
        except Exception:  # noqa: BLE001 - cannot tell: the caller starts over from the database
            return False


@dataclass
class KeyAuth:
    """An authenticated API key; `gate` when Redis serves it (the cache, the rate limit, the queue)."""

    api_key: ApiKey
    digest: str
    gate: KeyGate | None = None


_keys: dict[str, tuple[ApiKey, bytes, float]] = {}  # key hash -> (key with its deployment, generation, when)


def api_key_for_digest(digest: str, *, cached: bool = True) -> KeyAuth | None:
    client = platform_redis.client()
    ttl = settings.SERVING_KEY_CACHE_SECONDS
    use_cache = client is not None and ttl > 0
    hit = _keys.get(digest) if use_cache and cached else None
    if hit is not None and time.monotonic() - hit[2] < ttl:
        _touch(hit[0])
        return KeyAuth(hit[0], digest, KeyGate(hit[0], hit[1]))
    generation = _generation(client) if use_cache else None
    rows = ApiKey.objects.select_related("deployment").filter(key_hash=digest, revoked_at__isnull=True)
    api_key = next(iter(rows.order_by()[:1]), None)
    if api_key is None:
        _keys.pop(digest, None)
        return None
    _touch(api_key)
    if generation is None:
        return KeyAuth(api_key, digest)
    if len(_keys) > 10_000:
        _keys.clear()
    _keys[digest] = (api_key, generation, time.monotonic())
    return KeyAuth(api_key, digest, KeyGate(api_key, generation))


def with_api_key(found: KeyAuth, work: Callable[[KeyAuth], Any]) -> Any:
    """Run `work` for a key read from this process's cache; when it turns out a deployment or key
    changed meanwhile (Stale, or a refusal made while the generation moved), start over from the
    database. Keys without a gate (no Redis) are checked once, against the database."""
    from rest_framework.exceptions import AuthenticationFailed

    for _ in range(3):
        try:
            return work(found)
        except Stale:
            pass
        except Exception:
            if found.gate is None or found.gate.fresh():
                raise  # a refusal (400, 413, 429, 503...) made on current facts
        found = api_key_for_digest(found.digest, cached=False)
        if found is None:
            raise AuthenticationFailed("Invalid or revoked API key.") from None
    raise Unavailable("The deployment is being changed; try again in a moment.")


def key_rate_limit(api_key: ApiKey) -> None:
    """The rate limit of a key without a gate (no Redis): RateLimited when over its budget."""
    retry_after = rate_limit_hit(api_key=api_key)
    if retry_after is not None:
        raise RateLimited(retry_after, api_key.rate_per_minute)


def _touch(api_key: ApiKey) -> None:
    """Record the last use at most once a minute: no write per request on the hot path."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def _rate_key(api_key_id: int, window: int) -> str:
    return f"{{mlp}}:rate:{api_key_id}:{window}"


def _generation(client) -> bytes | None:
    """The current serving generation (created when Redis has none, e.g. after a restart)."""
    try:
        value = client.get(SERVING_GENERATION)
        if value is None:
            client.set(SERVING_GENERATION, os.urandom(8).hex(), nx=True)
            value = client.get(SERVING_GENERATION)
        return value
    except Exception:  # noqa: BLE001 - Redis away: no cache
        return None


def serving_changed() -> None:
    """A deployment or API key changed: every process drops its serving cache (now, and after commit)."""
    _keys.clear()

    def bump() -> None:
        client = platform_redis.client()
        if client is not None:
            try:
                client.set(SERVING_GENERATION, os.urandom(8).hex())
            except Exception:  # Redis away: the caches are not used either
                logger.warning("could not bump the serving generation", exc_info=True)

    bump()
    transaction.on_commit(bump)


_local_counts: dict[tuple[int, int], int] = {}


def rate_limit_hit(*, api_key: ApiKey) -> int | None:
    """Count one request; returns the seconds to wait when over the key's per-minute budget.

    Fixed one-minute windows in Redis (shared by every worker process); without Redis (the
    embedded mode), a per-process counter. (Calls with a `KeyGate` are counted by its admit.)
    """
    now = time.time()
    window = int(now // 60)
    retry_after = max(1, 60 - int(now % 60))
    client = platform_redis.client()
    count: int | None = None
    if client is not None:
        key = _rate_key(api_key.pk, window)
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = pipe.execute()[0]
        except Exception:  # noqa: BLE001 - Redis down: do not turn the model off, fall back locally
            count = _local_incr(api_key.pk, window)
    else:
        count = _local_incr(api_key.pk, window)
    return retry_after if count > api_key.rate_per_minute else None


def _local_incr(key_id: int, window: int) -> int:
    k = (key_id, window)
    _local_counts[k] = _local_counts.get(k, 0) + 1
    if len(_local_counts) > 10_000:
        _local_counts.clear()
    return _local_counts[k]
