"""API endpoints of the platform itself (not of an app)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mlplatform.version import API_VERSION


class VersionApi(APIView):
    """`GET /api/v1/version/`: the API version; the Python client of the same version speaks it."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=inline_serializer(
            "ApiVersion",
            {"api_version": serializers.CharField(), "client": serializers.DictField()},
        )
    )
    def get(self, request):
        return Response(
            {
                "api_version": API_VERSION,
                "client": {
                    "package": "mlplatform-client",
                    "import": "mlplatform_client",
                    "version": API_VERSION,
                    "install": "pip install ./clients/python (from a checkout of this repository)",
                },
            }
        )
