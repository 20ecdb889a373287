from __future__ import annotations

import django_filters
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, renderers, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs import selectors
from jobs.models import Job, JobStatus
from jobs.redaction import job_public_params, job_public_result
from jobs.runner import job_cancel
from jobs.waiting import job_events, job_wait, wait_cap
from mlplatform.errors import InvalidInput
from projects.access import can
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


class JobChildrenSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    expected = serializers.IntegerField()
    active = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class JobSerializer(serializers.ModelSerializer):
    """A job as its readers see it: `status`, `progress` and `message` cover its child jobs
    (`jobs.selectors`); `own_status` is the job's own step alone, `children` counts the rest."""

    traceback = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    own_status = serializers.ChoiceField(choices=JobStatus.choices, source="status", read_only=True)
    children = serializers.SerializerMethodField()

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
            "own_status",
            "children",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields

    def get_traceback(self, job: Job) -> str | None:
        # Tracebacks can reveal paths and data: owners only.
        request = self.context.get("request")
        if request is not None and can(request.user, job.project_id, Action.VIEW_TRACEBACK):
            return job.traceback
        return None

    def _rollup(self, job: Job) -> selectors.Rollup:
        summaries = self.context.get("children")
        if summaries is None:  # one job: its own queries, and its busiest child's last word
            summary = selectors.children_summaries([job]).get(job.pk)
            busy = selectors.running_child_message(job) if summary and summary.active else ""
            return selectors.rollup(job, summary, running_child_message=busy)
        return selectors.rollup(job, summaries.get(job.pk))

    @extend_schema_field(JobChildrenSerializer(allow_null=True))
    def get_children(self, job: Job) -> dict | None:
        return None  # filled in by to_representation with the same roll-up as the status

    def to_representation(self, job: Job) -> dict:
        data = super().to_representation(job)
        # Secret fields declared by the job's handler (webhook signing secrets...) never leave.
        data["params"] = job_public_params(job)
        data["result"] = job_public_result(job)
        view = self._rollup(job)
        data.update(status=view.status, progress=view.progress, message=view.message, children=view.children)
        return data


class JobFilter(django_filters.FilterSet):
    # The status a reader sees: a coordinator whose trials still run is `running`.
    status = django_filters.ChoiceFilter(choices=JobStatus.choices, field_name="effective_status")
    own_status = django_filters.ChoiceFilter(choices=JobStatus.choices, field_name="status")

    class Meta:
        model = Job
        fields = ["project", "status", "own_status", "kind", "target_type", "target_id", "parent"]


class EventStreamRenderer(renderers.BaseRenderer):
    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import json

        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()


WAIT_PARAMETER = OpenApiParameter(
    "wait",
    float,
    description="Seconds to wait for the job (children included) to reach a terminal state before answering; "
    "capped by the server (JOB_WAIT_MAX_SECONDS, 60 s by default).",
)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Jobs: any long work, with status, progress and error. Cancel with POST .../cancel/.

    `GET .../{id}/?wait=30` answers when the job is finished or after 30 s (long poll);
    `GET .../{id}/events/` streams its progress as server-sent events.
    """

    queryset = Job.objects.select_related("created_by")
    serializer_class = JobSerializer
    filterset_class = JobFilter
    ordering_fields = ["created_at", "status", "kind"]
    action_permissions = {"cancel": Action.CANCEL_JOB, "events": Action.VIEW}
    extra_query_params = {"retrieve": ["wait"]}

    def base_queryset(self):
        return selectors.job_rollup(Job.objects.select_related("created_by"))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "children": selectors.children_summaries(page)}
        return self.get_paginated_response(JobSerializer(page, many=True, context=context).data)

    @extend_schema(parameters=[WAIT_PARAMETER])
    def retrieve(self, request, pk=None):
        job = self.get_object()
        raw = request.query_params.get("wait")
        if raw is not None:
            try:
                seconds = float(raw)
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds < float("inf"):
                raise InvalidInput(
                    f"wait must be a number of seconds from 0 to {wait_cap():g}; got {raw!r}.", field="wait"
                )
            job_wait(job.pk, seconds)
            job = self.get_object()
        return Response(JobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(
        responses={(200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="Server-sent events")}
    )
    @action(detail=True, methods=["get"], renderer_classes=[EventStreamRenderer, renderers.JSONRenderer])
    def events(self, request, pk=None):
        """Server-sent events: `progress` (status, progress, message) on each change, `end` when finished."""
        job = self.get_object()
        response = StreamingHttpResponse(job_events(job.pk), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response

    @extend_schema(request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job_cancel(job=self.get_object(), actor=request.user)
        return Response(JobSerializer(self.get_object(), context={"request": request}).data)
