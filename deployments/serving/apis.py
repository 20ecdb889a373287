"""REST API of serving: predict (API key or user), and a deployment's API keys.

POST deployments/<pk>/predict/                  `Api-Key` (one deployment) or a user with PREDICT
GET  deployments/<pk>/keys/                     the deployment's keys (MANAGE_DEPLOYMENTS)
POST deployments/<pk>/keys/                     a new key, shown once
POST deployments/<pk>/keys/<key_id>/revoke/
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication
from deployments.authentication import ApiKeyAuthentication
from deployments.models import ApiKey, Deployment
from deployments.serving import keys, selectors, services
from mlplatform import jsonguard
from mlplatform.api import ChoiceField
from mlplatform.errors import InvalidInput, PayloadTooLarge
from projects.access import access
from projects.roles import Action


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "rate_per_minute", "created_by", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    rate_per_minute = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)


def _managed(request, pk: int) -> Deployment:
    return access(request.user, Deployment.objects.select_related("project"), pk, Action.MANAGE_DEPLOYMENTS)


class ApiKeysApi(APIView):
    """A deployment's API keys: list them, or create one (its clear value is in this answer only)."""

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request, pk: int):
        deployment = _managed(request, pk)
        return Response(ApiKeySerializer(selectors.deployment_keys(deployment), many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeySerializer})
    def post(self, request, pk: int):
        deployment = _managed(request, pk)
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        api_key, clear = services.api_key_create(
            deployment=deployment,
            actor=request.user,
            name=body.validated_data["name"],
            rate_per_minute=body.validated_data.get("rate_per_minute"),
        )
        data = ApiKeySerializer(api_key).data
        data["key"] = clear  # shown once: only its hash is stored
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    @extend_schema(request=None, responses=ApiKeySerializer)
    def post(self, request, pk: int, key_id: int):
        deployment = _managed(request, pk)
        api_key = deployment.api_keys.filter(pk=key_id).first()
        if api_key is None:
            raise Http404
        api_key = services.api_key_revoke(api_key=api_key, actor=request.user)
        return Response(ApiKeySerializer(api_key).data)


# --- predict --------------------------------------------------------------------------------------

_threads_limited = False


def _limit_threads() -> None:
    """One BLAS / OpenMP thread per web worker: a one-row predict gains nothing from a thread pool,
    and several gunicorn workers each spinning a pool on the same cores ruin tail latency."""
    global _threads_limited
    if not _threads_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(settings.SERVING_THREADS)
        _threads_limited = True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class PredictIn(serializers.Serializer):
    instances = serializers.ListField(child=serializers.DictField(), min_length=1)


class PredictionOut(serializers.Serializer):
    id = serializers.UUIDField()
    prediction = serializers.JSONField()
    confidence = serializers.FloatField(allow_null=True)
    probabilities = serializers.DictField(allow_null=True, required=False)
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False)
    status = ChoiceField(choices=["accepted", "pending_review"])
    review_id = serializers.IntegerField(required=False, allow_null=True)


class PredictOut(serializers.Serializer):
    model_version = serializers.IntegerField()
    predictions = PredictionOut(many=True)


class PredictApi(APIView):
    """POST /api/v1/deployments/{id}/predict/: `Api-Key` (one deployment) or a user with PREDICT."""

    authentication_classes = [ApiKeyAuthentication, TokenAuthentication, SessionAuthentication]
    permission_classes: list = []
    throttle_classes: list = []

    @extend_schema(request=PredictIn, responses=PredictOut)
    def post(self, request, pk):
        started = time.perf_counter()
        _limit_threads()
        if isinstance(request.auth, ApiKey):
            return self._with_key(request, pk, request.user.key_auth, started)
        if not request.user or not request.user.is_authenticated:
            raise NotAuthenticated()
        deployment = access(
            request.user,
            Deployment.objects.select_related("model_version", "shadow_model_version"),
            pk,
            Action.PREDICT,
        )
        return _predict(request, deployment, f"user:{request.user.pk}", started)

    def _with_key(self, request, pk, found, started):
        """A deployment key: read from this process's cache, admitted (rate limit, freshness, log
        queue) in one Redis call once the answer is ready; started over from the database when a
        deployment or key changed meanwhile (keys.with_api_key)."""

        def answer(current) -> HttpResponse:
            api_key = current.api_key
            # A key for another deployment gets the same 404 as a deployment that does not exist.
            if str(api_key.deployment_id) != str(pk):
                raise Http404
            if current.gate is None:
                keys.key_rate_limit(api_key)
            return _predict(request, api_key.deployment, f"key:{api_key.pk}", started, gate=current.gate)

        try:
            return keys.with_api_key(found, answer)
        except keys.RateLimited as exc:
            services.error_count(deployment=found.api_key.deployment, kind="rate_limited")
            return Response(
                {"detail": str(exc), "code": "throttled"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )


def _predict(request, deployment: Deployment, caller: str, started: float, gate=None) -> HttpResponse:
    body = _json_body(request, deployment)
    result = services.predict(
        deployment=deployment, instances=body.get("instances"), caller=caller, source="api", started=started, gate=gate
    )
    return HttpResponse(json.dumps(result.as_dict(), separators=(",", ":")).encode(), content_type="application/json")


def _json_body(request, deployment: Deployment) -> dict[str, Any]:
    length = request.META.get("CONTENT_LENGTH") or "0"
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        too_big = limit is not None and int(length) > limit
        raw = b"" if too_big else request._request.body
    except (ValueError, RequestDataTooBig):
        too_big = True
    if too_big:
        services.error_count(deployment=deployment, kind="validation")
        raise PayloadTooLarge(f"The request body is larger than {limit:,} bytes.", field="instances")
    try:
        # The nesting limit before the parser recurses: 50,000 "[" is a 400, never a 500.
        body = jsonguard.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        services.error_count(deployment=deployment, kind="validation")
        raise InvalidInput(f"The body is not valid JSON: {exc}", field="body") from None
    if not isinstance(body, dict) or "instances" not in body:
        services.error_count(deployment=deployment, kind="validation")
        raise InvalidInput('Send {"instances": [{feature: value, ...}, ...]}.', field="instances")
    extra = [k for k in body if k != "instances"]
    if extra:
        services.error_count(deployment=deployment, kind="validation")
        raise InvalidInput(f"Unexpected field {extra[0]!r}.", field=str(extra[0])[:100])
    return body


# Names as the router gave them when keys were actions of the deployments viewset (public contract).
urlpatterns = [
    path("deployments/<int:pk>/predict/", PredictApi.as_view(), name="deployment-predict"),
    path("deployments/<int:pk>/keys/", ApiKeysApi.as_view(), name="deployment-keys"),
    path("deployments/<int:pk>/keys/<int:key_id>/revoke/", ApiKeyRevokeApi.as_view(), name="deployment-revoke-key"),
]
