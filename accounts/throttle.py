"""Failed logins, counted per account and per client address, shared by every process.

Every path that checks a password (the login page, `POST /api/v1/auth/token/`, the admin)
goes through `accounts.backends.ThrottledModelBackend`, which asks `login_wait` before checking
and reports the outcome here. Counters live in Redis (one Lua call each: atomic across web
processes and machines); the embedded mode without Redis (one web process) keeps them in memory.

Policy: an account gets `LOGIN_FREE_FAILURES` failures, a client address (IPv6: its /64)
`LOGIN_ADDRESS_FREE_FAILURES`; each failure after that locks the account (or address) for
base, 2 x base, 4 x base ... seconds, capped at `LOGIN_BACKOFF_MAX_SECONDS`. While locked, no
password is checked at all, the right one included. A success clears the account's counter
(not the address's: one valid account must not launder guesses at others). Counters are
forgotten `LOGIN_FAILURE_MEMORY_SECONDS` after the last failure.

If Redis cannot be reached the check lets the attempt through (logged): a Redis restart must
not lock every user out; the counters come back with Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from typing import Any

from django.conf import settings

from mlplatform.redis import client as redis_client

logger = logging.getLogger(__name__)

PREFIX = "{mlp}:login:"

# KEYS: the counters. ARGV: memory seconds, then (free, base, max) per key. Returns the lock
# (milliseconds) now in force for each key after counting this failure.
_FAIL_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local memory = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local free = tonumber(ARGV[2 + (i - 1) * 3])
  local base = tonumber(ARGV[3 + (i - 1) * 3])
  local cap = tonumber(ARGV[4 + (i - 1) * 3])
  local n = redis.call('HINCRBY', key, 'n', 1)
  local wait = 0
  if n > free then
    wait = math.floor(math.min(cap, base * 2 ^ math.min(n - free - 1, 40)) * 1000)
    redis.call('HSET', key, 'until', string.format('%d', now + wait))
  end
  redis.call('EXPIRE', key, math.max(memory, math.floor(wait / 1000) + 60))
  out[i] = string.format('%d', wait)
end
return out
"""

# KEYS: the counters. Returns the milliseconds left on the longest lock (0: none).
_WAIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = 0
for _, key in ipairs(KEYS) do
  local lock = tonumber(redis.call('HGET', key, 'until') or '0')
  if lock - now > left then left = lock - now end
end
return left
"""


def _account_key(username: str) -> str:
    digest = hashlib.sha256(username.strip().casefold().encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{PREFIX}account:{digest}"


def _address_key(bucket: str) -> str:
    return f"{PREFIX}address:{bucket}"


def _keys(username: str, bucket: str | None) -> list[str]:
    return [_account_key(username)] + ([_address_key(bucket)] if bucket else [])


def _policies(count: int) -> list[int]:
    base, cap = settings.LOGIN_BACKOFF_BASE_SECONDS, settings.LOGIN_BACKOFF_MAX_SECONDS
    frees = [settings.LOGIN_FREE_FAILURES, settings.LOGIN_ADDRESS_FREE_FAILURES][:count]
    return [v for free in frees for v in (free, base, cap)]


class _RedisStore:
    """Counters in the process's one Redis client (`mlplatform.redis`), shared by every process."""

    @property
    def client(self) -> Any:
        return redis_client()

    @property
    def fail_script(self) -> Any:
        return self.client.register_script(_FAIL_LUA)  # a Script object: EVALSHA, loaded once per server

    @property
    def wait_script(self) -> Any:
        return self.client.register_script(_WAIT_LUA)

    def wait(self, keys: list[str]) -> float:
        return int(self.wait_script(keys=keys)) / 1000

    def fail(self, keys: list[str]) -> float:
        args = [settings.LOGIN_FAILURE_MEMORY_SECONDS, *_policies(len(keys))]
        return max(float(w) for w in self.fail_script(keys=keys, args=args)) / 1000

    def clear(self, key: str) -> None:
        self.client.delete(key)


class _MemoryStore:
    """The embedded mode's single web process (no Redis): the same policy in a dict."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[int, float, float]] = {}  # key -> (failures, locked until, forget at)

    def wait(self, keys: list[str]) -> float:
        now = time.time()
        with self.lock:
            return max([0.0] + [self.rows[k][1] - now for k in keys if k in self.rows and self.rows[k][2] > now])

    def fail(self, keys: list[str]) -> float:
        now, longest = time.time(), 0.0
        policies = _policies(len(keys))
        with self.lock:
            for i, key in enumerate(keys):
                free, base, cap = policies[3 * i : 3 * i + 3]
                count, until, forget = self.rows.get(key, (0, 0.0, 0.0))
                count = count + 1 if forget > now else 1
                wait = min(cap, base * 2 ** min(count - free - 1, 40)) if count > free else 0
                until = now + wait if wait else until
                self.rows[key] = (count, until, now + max(settings.LOGIN_FAILURE_MEMORY_SECONDS, wait + 60))
                longest = max(longest, wait)
        return longest

    def clear(self, key: str) -> None:
        with self.lock:
            self.rows.pop(key, None)


_store: _RedisStore | _MemoryStore | None = None
_store_lock = threading.Lock()


def _get_store() -> _RedisStore | _MemoryStore:
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = _RedisStore() if settings.REDIS_URL else _MemoryStore()
    return _store


def login_wait(*, username: str, bucket: str | None) -> int:
    """Whole seconds to wait before this account may try from this address (0: go ahead)."""
    try:
        left = _get_store().wait(_keys(username, bucket))
    except Exception:
        logger.warning("login throttle unavailable; attempt for %r not checked", username[:150], exc_info=True)
        return 0
    return math.ceil(left) if left > 0 else 0


def login_failed(*, username: str, bucket: str | None) -> int:
    """Count a failure; returns the lock (seconds) now in force, 0 while failures are free."""
    try:
        return math.ceil(_get_store().fail(_keys(username, bucket)))
    except Exception:
        logger.warning("login throttle unavailable; failure for %r not counted", username[:150], exc_info=True)
        return 0


def login_succeeded(*, username: str) -> None:
    try:
        _get_store().clear(_account_key(username))
    except Exception:
        logger.warning("login throttle unavailable; counter of %r not cleared", username[:150], exc_info=True)


def forget_all() -> None:
    """Drop every counter (tests, and an operator clearing a lock-out by hand)."""
    store = _get_store()
    if isinstance(store, _RedisStore):
        keys = list(store.client.scan_iter(match=f"{PREFIX}*", count=1000))
        if keys:
            store.client.delete(*keys)
    else:
        with store.lock:
            store.rows.clear()


def throttled_message(seconds: int) -> str:
    return f"Too many failed attempts; try again in {seconds} second{'s' if seconds != 1 else ''}."
