"""REST API of the registry: model versions (list, detail, download, usage, gate) and registration.

GET  models/?project=                 versions of my projects
GET  models/<id>/download/            the .skops file, hash-checked (X-Content-SHA256)
GET  models/<id>/usage/               a loading snippet and the model card
GET  models/<id>/gate/                the promotion gate's verdict
POST runs/<id>/register/              the evaluated run becomes the project's next version
"""

from __future__ import annotations

import io

from django.http import FileResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import ModelVersion
from deployments.registry import selectors, services
from experiments.models import Run
from mlplatform.api import accepted, accepted_schema
from mlplatform.artifacts import read_verified
from projects.access import access
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


class ModelVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "version",
            "name",
            "task_type",
            "target",
            "classes",
            "sha256",
            "size_bytes",
            "input_schema",
            "metrics",
            "lineage",
            "model_card",
            "reference_status",
            "reference_error",
            "positive_class",
            "run",
            "experiment",
            "dataset_version",
            "created_by",
            "created_at",
            "archived_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, obj: ModelVersion) -> str | None:
        """None once the model retention deleted the files (`archived_at`)."""
        return None if obj.archived_at else f"/api/v1/models/{obj.pk}/download/"


class GateSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    metric = serializers.CharField()
    strictness = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    decision = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Registered model versions (`?project=` filters). Files download with VIEW access."""

    queryset = ModelVersion.objects.select_related("created_by")
    serializer_class = ModelVersionSerializer
    filterset_fields = ["project", "task_type"]
    ordering_fields = ["version", "created_at"]

    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        version = self.get_object()
        services.model_file_gone(version)
        data = read_verified(version.artifact_key, version.sha256)  # a tampered file is never served
        response = FileResponse(
            io.BytesIO(data),
            as_attachment=True,
            filename=f"model-v{version.version}.skops",
            content_type="application/octet-stream",
        )
        response["X-Content-SHA256"] = version.sha256
        return response

    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        version = self.get_object()
        return Response({"snippet": selectors.usage_snippet(version), "model_card": version.model_card})

    @action(detail=True, methods=["get"])
    def gate(self, request, pk=None):
        version = self.get_object()
        return Response(GateSerializer(selectors.gate_check(version, version.project).as_dict()).data)


class RegisterRunApi(APIView):
    """POST /api/v1/runs/{id}/register/: the evaluated run becomes the project's next model version."""

    @extend_schema(request=None, responses={202: accepted_schema(ModelVersionSerializer)})
    def post(self, request, pk):
        """Registers at once; `Location` is the version's preparation job (input schema and drift
        reference): the version can be deployed when it has succeeded (`reference_status: ready`)."""
        run = access(request.user, Run.objects.select_related("experiment", "project"), pk, Action.RUN_EXPERIMENTS)
        version = services.model_version_register(run=run, actor=request.user)
        return accepted(ModelVersionSerializer(version).data, version.prepare_job)


urlpatterns = [
    path("runs/<int:pk>/register/", RegisterRunApi.as_view(), name="run-register"),
]


def register(router) -> None:
    """Register viewsets on the shared /api/v1/ router."""
    router.register("models", ModelVersionViewSet, basename="modelversion")
