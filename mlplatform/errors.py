"""Domain errors raised by services; one API handler and one UI helper turn them into 4xx."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: [message]} if field else None)


class InvalidInput(DomainError):
    status_code = 400
    code = "invalid"


class PermissionDenied(DomainError):
    status_code = 403
    code = "permission_denied"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Gone(DomainError):
    """The thing existed and was shut down for good (a retired deployment): 410, not 404."""

    status_code = 410
    code = "gone"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


class Unavailable(DomainError):
    status_code = 503
    code = "unavailable"
