"""REST API of the registry and serving: models, deployments, predict, rollback, keys, batch."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication
from deployments import registry, selectors, services
from deployments.authentication import ApiKeyAuthentication
from deployments.models import ApiKey, Deployment, ModelVersion
from experiments.models import Run
from jobs.models import Job
from mlplatform.errors import InvalidInput, PayloadTooLarge
from mlplatform.viewsets import ProjectScopedViewSet
from projects.access import access
from projects.roles import Action

# --- serializers ------------------------------------------------------------------------------


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
            "run",
            "experiment",
            "dataset_version",
            "created_by",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, obj: ModelVersion) -> str:
        return f"/api/v1/models/{obj.pk}/download/"


class GateSerializer(serializers.Serializer):
    passed = serializers.BooleanField()
    metric = serializers.CharField()
    strictness = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    decision = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())


class ChangeSerializer(serializers.Serializer):
    action = serializers.CharField()
    from_version = serializers.IntegerField(source="from_version.version", allow_null=True, default=None)
    to_version = serializers.IntegerField(source="to_version.version", allow_null=True, default=None)
    reason = serializers.CharField()
    gate = serializers.JSONField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class DeploymentSerializer(serializers.ModelSerializer):
    active_version = serializers.IntegerField(source="model_version.version", read_only=True)
    shadow_version = serializers.IntegerField(source="shadow_model_version.version", read_only=True, default=None)
    predict_url = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "project",
            "name",
            "model_version",
            "active_version",
            "shadow_model_version",
            "shadow_version",
            "status",
            "unknown_category_policy",
            "allow_missing",
            "max_instances",
            "review_threshold",
            "review_mode",
            "gate_override",
            "predict_url",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_predict_url(self, obj: Deployment) -> str:
        return f"/api/v1/deployments/{obj.pk}/predict/"


class DeploymentCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    model_version = serializers.IntegerField()
    review_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    unknown_category_policy = serializers.ChoiceField(choices=services.UNKNOWN_POLICIES, default="error")
    allow_missing = serializers.BooleanField(default=True)
    max_instances = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    justification = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class DeploymentUpdateSerializer(serializers.Serializer):
    unknown_category_policy = serializers.ChoiceField(choices=services.UNKNOWN_POLICIES, required=False)
    allow_missing = serializers.BooleanField(required=False)
    max_instances = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    review_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    review_mode = serializers.ChoiceField(choices=["hold", "flag"], required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class PromoteSerializer(ReasonSerializer):
    model_version = serializers.IntegerField()
    justification = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class ShadowSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "rate_per_minute", "created_by", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    rate_per_minute = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)


class BatchSerializer(serializers.Serializer):
    file = serializers.FileField(required=False)
    dataset_version = serializers.IntegerField(required=False)
    output_format = serializers.ChoiceField(choices=["csv", "parquet"], default="csv")
    log_predictions = serializers.BooleanField(default=True)


def batch_job_payload(job: Job, deployment: Deployment) -> dict[str, Any]:
    data = {
        "id": job.pk,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "created_at": job.created_at,
        "result": job.result or {},
    }
    if job.status == "succeeded" and (job.result or {}).get("output_key"):
        data["download_url"] = f"/api/v1/deployments/{deployment.pk}/batch/{job.pk}/download/"
    log_id = (job.result or {}).get("logging_job_id")
    if log_id:  # the child job writing the batch's predictions to the monitoring log
        log = Job.objects.filter(pk=log_id).only("status", "progress", "message").first()
        if log is not None:
            data["logging"] = {"job": log.pk, "status": log.status, "progress": log.progress, "message": log.message}
    return data


# --- views ----------------------------------------------------------------------------------------


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Registered model versions (`?project=` filters). Files download with VIEW access."""

    queryset = ModelVersion.objects.select_related("created_by")
    serializer_class = ModelVersionSerializer
    filterset_fields = ["project", "task_type"]
    ordering_fields = ["version", "created_at"]

    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        version = self.get_object()
        from mlplatform.artifacts import read_verified

        data = read_verified(version.artifact_key, version.sha256)  # a tampered file is never served
        import io

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
        return Response(GateSerializer(registry.gate_check(version, version.project).as_dict()).data)


class RegisterRunApi(APIView):
    """POST /api/v1/runs/{id}/register/: the evaluated run becomes the project's next model version."""

    @extend_schema(request=None, responses={201: ModelVersionSerializer})
    def post(self, request, pk):
        run = access(request.user, Run.objects.select_related("experiment", "project"), pk, Action.RUN_EXPERIMENTS)
        version = registry.model_version_register(run=run, actor=request.user)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    queryset = Deployment.objects.select_related("model_version", "shadow_model_version", "created_by", "project")
    serializer_class = DeploymentSerializer
    write_permission = Action.MANAGE_DEPLOYMENTS
    action_permissions = {
        "keys": Action.MANAGE_DEPLOYMENTS,
        "revoke_key": Action.MANAGE_DEPLOYMENTS,
        "batch": Action.MANAGE_DEPLOYMENTS,
        "batch_download": Action.VIEW,
    }
    filterset_fields = ["project", "status"]
    ordering_fields = ["created_at", "name"]

    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def required_action(self) -> Action:
        if self.action == "batch" and self.request.method == "GET":
            return Action.VIEW
        return super().required_action()

    def create(self, request):
        data = DeploymentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = self.project_from_body(v["project"], Action.MANAGE_DEPLOYMENTS)
        version = self.related_in_project(ModelVersion.objects.all(), v["model_version"], project, "model_version")
        deployment = services.deployment_create(
            project=project,
            actor=request.user,
            name=v["name"],
            model_version=version,
            review_threshold=v.get("review_threshold"),
            unknown_category_policy=v["unknown_category_policy"],
            allow_missing=v["allow_missing"],
            max_instances=v.get("max_instances"),
            justification=v["justification"],
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        deployment = self.get_object()
        data = DeploymentSerializer(deployment).data
        data["history"] = ChangeSerializer(selectors.deployment_history(deployment)[:100], many=True).data
        data["gate"] = registry.gate_check(deployment.model_version, deployment.project).as_dict()
        return Response(data)

    def partial_update(self, request, pk=None):
        deployment = self.get_object()
        body = DeploymentUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        unknown = [k for k in request.data if k not in DeploymentUpdateSerializer().fields]
        if unknown:
            raise InvalidInput(f"This field cannot be changed here: {unknown[0]}.", field=str(unknown[0]))
        d = services.deployment_update(deployment=deployment, actor=request.user, **body.validated_data)
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        deployment = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = services.deployment_rollback(
            deployment=deployment, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        deployment = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        version = self.related_in_project(
            ModelVersion.objects.all(), v["model_version"], deployment.project, "model_version"
        )
        d = services.deployment_promote(
            deployment=deployment,
            actor=request.user,
            model_version=version,
            reason=v["reason"],
            justification=v["justification"],
        )
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        deployment = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = services.deployment_set_status(
            deployment=deployment, actor=request.user, status="paused", reason=body.validated_data["reason"]
        )
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        deployment = self.get_object()
        d = services.deployment_set_status(deployment=deployment, actor=request.user, status="active")
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["post"])
    def shadow(self, request, pk=None):
        deployment = self.get_object()
        body = ShadowSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mv = body.validated_data["model_version"]
        version = (
            self.related_in_project(ModelVersion.objects.all(), mv, deployment.project, "model_version")
            if mv is not None
            else None
        )
        d = services.deployment_set_shadow(deployment=deployment, actor=request.user, model_version=version)
        return Response(DeploymentSerializer(d).data)

    @action(detail=True, methods=["get", "post"])
    def keys(self, request, pk=None):
        deployment = self.get_object()
        if request.method == "GET":
            return Response(ApiKeySerializer(selectors.deployment_keys(deployment), many=True).data)
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

    @action(detail=True, methods=["post"], url_path=r"keys/(?P<key_id>\d+)/revoke")
    def revoke_key(self, request, pk=None, key_id=None):
        deployment = self.get_object()
        try:
            api_key = deployment.api_keys.get(pk=key_id)
        except ApiKey.DoesNotExist:
            raise Http404 from None
        api_key = services.api_key_revoke(api_key=api_key, actor=request.user)
        return Response(ApiKeySerializer(api_key).data)

    @action(detail=True, methods=["get", "post"])
    def batch(self, request, pk=None):
        deployment = self.get_object()
        if request.method == "GET":
            jobs = selectors.batch_jobs(deployment)[:50]
            return Response([batch_job_payload(j, deployment) for j in jobs])
        body = BatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        dv = None
        if v.get("dataset_version") is not None:
            from datasets.models import DatasetVersion

            dv = self.related_in_project(
                DatasetVersion.objects.all(), v["dataset_version"], deployment.project, "dataset_version"
            )
        job = services.batch_start(
            deployment=deployment,
            actor=request.user,
            upload=v.get("file"),
            dataset_version=dv,
            output_format=v["output_format"],
            log_predictions=v["log_predictions"],
        )
        return Response(batch_job_payload(job, deployment), status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["get"], url_path=r"batch/(?P<job_id>\d+)/download")
    def batch_download(self, request, pk=None, job_id=None):
        deployment = self.get_object()
        job = selectors.batch_jobs(deployment).filter(pk=job_id).first()
        if job is None or job.status != "succeeded" or not (job.result or {}).get("output_key"):
            raise Http404
        fmt = job.result.get("output_format", "csv")
        return FileResponse(
            default_storage.open(job.result["output_key"], "rb"),
            as_attachment=True,
            filename=f"{deployment.name}-batch-{job.pk}.{fmt}".replace(" ", "_"),
            content_type="text/csv" if fmt == "csv" else "application/octet-stream",
        )


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
    status = serializers.ChoiceField(choices=["accepted", "pending_review"])
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
        deployment or key changed meanwhile (services.with_api_key)."""

        def answer(current) -> HttpResponse:
            api_key = current.api_key
            # A key for another deployment gets the same 404 as a deployment that does not exist.
            if str(api_key.deployment_id) != str(pk):
                raise Http404
            if current.gate is None:
                services.key_rate_limit(api_key)
            return _predict(request, api_key.deployment, f"key:{api_key.pk}", started, gate=current.gate)

        try:
            return services.with_api_key(found, answer)
        except services.RateLimited as exc:
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
        body = json.loads(raw, parse_constant=_reject_constant)
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


urlpatterns = [
    path("runs/<int:pk>/register/", RegisterRunApi.as_view(), name="run-register"),
    path("deployments/<int:pk>/predict/", PredictApi.as_view(), name="deployment-predict"),
]


def register(router) -> None:
    """Register viewsets on the shared /api/v1/ router."""
    router.register("models", ModelVersionViewSet, basename="modelversion")
    router.register("deployments", DeploymentViewSet, basename="deployment")
