from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import throttle
from accounts.models import ApiToken
from accounts.services import token_create, token_expiry, token_revoke


class ObtainTokenApi(APIView):
    """Exchange a username and password for a new API token (optionally expiring).

    Failed attempts are throttled per account and per client address (429 with Retry-After),
    exactly like the login page.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []  # accounts/throttle.py, shared by every process, not DRF's

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, max_length=4096)
        name = serializers.CharField(required=False, max_length=80, default="api")
        expires_in_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3650)
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "TokenOut", {"token": serializers.CharField(), "expires_at": serializers.DateTimeField(allow_null=True)}
            ),
            429: OpenApiResponse(description="Too many failed attempts; the Retry-After header says how long."),
        },
        auth=[],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        expires_at = token_expiry(expires_in_days=values.get("expires_in_days"), expires_at=values.get("expires_at"))
        user = authenticate(request._request, username=values["username"], password=values["password"])
        wait = getattr(request._request, "login_throttled", 0)
        if wait:
            return Response(
                {"detail": throttle.throttled_message(wait), "code": "throttled"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
        if user is None or not user.is_active:
            return Response(
                {
                    "detail": "Unable to log in with the provided credentials.",
                    "code": "authentication_failed",
                    "errors": {"password": ["Wrong username or password."]},
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, key = token_create(user=user, name=values["name"], expires_at=expires_at)
        return Response({"token": key, "expires_at": token.expires_at})


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The asking user's own tokens. Revoke with POST .../revoke/.

    There is no create here on purpose: a token must not mint tokens that outlive it. New
    tokens come from the password (POST /api/v1/auth/token/) or the tokens page.
    """

    serializer_class = TokenSerializer
    ordering_fields = ["created_at", "last_used_at", "expires_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=None, responses=TokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = token_revoke(token=self.get_object())
        return Response(TokenSerializer(token).data)
