"""Password checks, throttled: the one place every login path (page, API, admin) goes through."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts import throttle
from mlplatform.clientip import client_address, client_bucket


class LoginThrottled(PermissionDenied):
    def __init__(self, seconds: int):
        super().__init__(throttle.throttled_message(seconds))
        self.seconds = seconds


class ThrottledModelBackend(ModelBackend):
    """ModelBackend behind the login throttle (accounts/throttle.py).

    While the account or the client address is locked, no password is checked and Django's
    `authenticate()` stops (PermissionDenied); the request carries `login_throttled` (seconds)
    so the page and the API can answer 429 with Retry-After.
    """

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        bucket = client_bucket(client_address(request)) if request is not None else None
        wait = throttle.login_wait(username=username, bucket=bucket)
        if wait:
            if request is not None:
                request.login_throttled = wait
            raise LoginThrottled(wait)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            throttle.login_failed(username=username, bucket=bucket)
        else:
            throttle.login_succeeded(username=username)
        return user
