"""The process's one Redis client (serving's key cache and rate limits, the prediction log).

Celery keeps its own broker connections; everything else that talks to Redis goes through
`client()`, so there is one connection pool per process, one set of timeouts, and one place a
test points elsewhere (`use`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

# Short timeouts: a Redis that stalls must turn into a quick fallback (serving without the key
# cache, a request writing its own prediction rows), never into requests that hang. Two seconds
# leave room for a drainer claiming a batch of a thousand rows on a busy server.
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 2.0

_client: Any = None
_lock = threading.Lock()


def client() -> Any:
    """The shared client, created on first use; None when the installation has no Redis."""
    global _client
    if _client is None and settings.REDIS_URL:
        with _lock:
            if _client is None:
                import redis

                _client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
                )
    return _client


@contextmanager
def use(replacement: Any) -> Iterator[Any]:
    """Talk to `replacement` instead for a while (tests: an unreachable Redis)."""
    global _client
    with _lock:
        previous, _client = _client, replacement
    try:
        yield replacement
    finally:
        with _lock:
            _client = previous
