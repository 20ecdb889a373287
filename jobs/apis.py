from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.models import Job, JobStatus
from jobs.redaction import job_public_params, job_public_result
from jobs.runner import job_cancel
from projects.access import can
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


class JobSerializer(serializers.ModelSerializer):
    traceback = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "project",
            "parent",
            "kind",
            "status",
            "progress",
            "message",
            "error",
            "traceback",
            "log",
            "params",
            "result",
            "target_type",
            "target_id",
            "attempts",
            "max_attempts",
            "cancel_requested",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        data = super().to_representation(job)
        # Secret fields declared by the job's handler (webhook signing secrets...) never leave.
        data["params"] = job_public_params(job)
        data["result"] = job_public_result(job)
        return data

    def get_traceback(self, job: Job) -> str | None:
        # Tracebacks can reveal paths and data: owners only.
        request = self.context.get("request")
        if request is not None and can(request.user, job.project_id, Action.VIEW_TRACEBACK):
            return job.traceback
        return None


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)

    class Meta:
        model = Job
        fields = ["project", "status", "kind", "target_type", "target_id", "parent"]


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Jobs: any long work, with status, progress and error. Cancel with POST .../cancel/."""

    queryset = Job.objects.select_related("created_by")
    serializer_class = JobSerializer
    filterset_class = JobFilter
    ordering_fields = ["created_at", "status", "kind"]
    action_permissions = {"cancel": Action.CANCEL_JOB}

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = job_cancel(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(job, context={"request": request}).data)
