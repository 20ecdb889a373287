"""HTTP: authentication, retries with back-off on 429 / 503 (honouring `Retry-After`), typed
errors, pagination. Everything else in the client goes through `Transport.request`."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import requests

from mlplatform_client.errors import BY_STATUS, APIError, RateLimited, ServerError

RETRY_STATUSES = (429, 503)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Transport:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"
        elif api_key:
            self.session.headers["Authorization"] = f"Api-Key {api_key}"
        from mlplatform_client import __version__

        self.session.headers["User-Agent"] = f"mlplatform-client/{__version__}"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        advised = retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None
        if advised is not None:
            return min(advised, self.max_backoff)
        # Exponential back-off with jitter, so many clients refused at once do not return at once.
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        data: dict | None = None,
        files: dict | None = None,
        headers: dict | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> requests.Response:
        """One call, retried on 429 and 503 (and on a dropped connection for reads)."""
        attempt = 0
        while True:
            for value in (files or {}).values():  # a retried upload sends the file from its start
                handle = value[1] if isinstance(value, tuple) else value
                if hasattr(handle, "seek"):
                    handle.seek(0)
            try:
                response = self.session.request(
                    method,
                    self.url(path),
                    params=params,
                    json=json,
                    data=data,
                    files=files,
                    headers=headers,
                    stream=stream,
                    timeout=timeout or self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout):
                if method.upper() not in ("GET", "HEAD") or attempt >= self.retries:
                    raise
                time.sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(self._delay(attempt, response))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_from(response)
            return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def paginate(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a list, following its `next` links."""
        body = self.get(path, params=params)
        while True:
            if isinstance(body, list):
                yield from body
                return
            yield from body.get("results", [])
            following = body.get("next")
            if not following:
                return
            body = self.get(following)


def error_from(response: requests.Response) -> APIError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or response.reason or f"HTTP {response.status_code}")
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
    cls = BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else APIError)
    kwargs: dict[str, Any] = {
        "status_code": response.status_code,
        "code": str(body.get("code") or ""),
        "errors": errors,
        "response": response,
    }
    if cls is RateLimited:
        kwargs["retry_after"] = retry_after_seconds(response.headers.get("Retry-After"))
    return cls(detail, **kwargs)
