"""Typed errors: every failed call raises one, carrying the server's `detail`, `code` and the
per-field messages (`ValidationError.errors == {"target": ["No column named 'x'."]}`)."""

from __future__ import annotations

from typing import Any


class MLPlatformError(Exception):
    """Base of every error raised by this client."""


class APIError(MLPlatformError):
    """The server answered with an error status."""

    status_code = 0

    def __init__(self, detail: str, *, status_code: int, code: str = "", errors: dict | None = None, response=None):
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.code = code
        self.errors: dict[str, list[str]] = errors or {}
        self.response = response

    def __str__(self) -> str:
        fields = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in self.errors.items())
        return f"{self.status_code} {self.detail}" + (f" ({fields})" if fields and fields not in self.detail else "")


class ValidationError(APIError):
    """400: bad input; `errors` maps each field to its messages. Nothing was changed."""


class AuthenticationError(APIError):
    """401: no or a wrong token / API key."""


class PermissionDenied(APIError):
    """403: your role in the project does not allow this (or the test rows are locked)."""


class NotFound(APIError):
    """404: no such object, or not in a project you belong to."""


class Conflict(APIError):
    """409: the state does not allow it (a second final evaluation, a decided review...)."""


class PayloadTooLarge(APIError):
    """413: the body or file is over the server's limit."""


class RateLimited(APIError):
    """429 after every retry; `retry_after` is the server's advice in seconds."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(APIError):
    """503 after every retry."""


class ServerError(APIError):
    """Any other 5xx."""


BY_STATUS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: ServiceUnavailable,
}


class JobFailed(MLPlatformError):
    """A job you waited for failed or was cancelled; `job` is its last state (with `error`)."""

    def __init__(self, job: dict):
        self.job = job
        kind, status = job.get("kind", "job"), job.get("status")
        error = job.get("error") or job.get("message") or ""
        super().__init__(f"{kind} #{job.get('id')} {status}" + (f": {error}" if error else ""))


class WaitTimeout(MLPlatformError):
    """The job was still running when the wait's `timeout` ran out (it goes on on the server)."""

    def __init__(self, job: dict, timeout: float):
        self.job = job
        super().__init__(f"{job.get('kind', 'job')} #{job.get('id')} still {job.get('status')} after {timeout:g} s")
