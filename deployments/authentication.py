"""`Authorization: Api-Key <key>`: deployment API keys, for the predict endpoint only."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from deployments.serving.services import api_key_authenticate


class ApiKeyUser(AnonymousUser):
    """The caller behind a deployment API key: no project role, only its one deployment."""

    def __init__(self, found):
        super().__init__()
        self.api_key = found.api_key
        self.key_auth = found  # with its KeyGate: the view admits the call once its answer is ready

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"key:{self.api_key.pk}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):  # type: ignore[override]
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid key header: expected 'Api-Key <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid key header: the key is not valid text.") from None
        found = api_key_authenticate(key)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(found), found.api_key

    def authenticate_header(self, request):  # type: ignore[override]
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "deployments.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a deployment API key (predict and feedback of one deployment).",
        }
