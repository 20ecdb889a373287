"""Monitoring API: feedback, the monitoring summary, on-demand snapshots, retrain, alerts.

Explicit paths (the deployments router belongs to the registry / serving module):
- POST  deployments/<pk>/feedback/          ground truth, one {prediction_id, actual} or {"items": [...]}
- GET   deployments/<pk>/monitoring/        latest snapshot, series (?range=24h|7d|30d|90d), open alerts, retrains
- PATCH deployments/<pk>/monitoring/        per-deployment settings (thresholds, interval, e-mail, webhook)
- POST  deployments/<pk>/snapshot/          compute a snapshot now (202 + job)
- POST  deployments/<pk>/retrain/           start a retrain (202 + job)
- POST  deployments/<pk>/challenger/promote/  promote a retrained challenger through the gate
- GET   alerts/                             alerts of my projects (?project=&deployment=&state=)
- POST  alerts/<id>/acknowledge/
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TokenAuthentication
from deployments.authentication import ApiKeyAuthentication
from deployments.models import Alert, ApiKey, Deployment, ModelVersion
from deployments.monitoring import selectors
from deployments.monitoring.services import alerts, config, feedback, retrain, snapshots
from deployments.serving import services as serving_services
from jobs.apis import JobSerializer
from mlplatform.api import accepted, accepted_schema, location_header
from mlplatform.errors import InvalidInput
from projects.access import access, scope
from projects.destinations import destinations_visible
from projects.roles import Action

# Feedback also accepts the deployment's API key (rate-limited like its predict calls).
FEEDBACK_AUTH: list[Any] = [ApiKeyAuthentication, TokenAuthentication, SessionAuthentication]


def deployment_for(request, pk: int, action: Action) -> Deployment:
    """The deployment `pk` for this caller: a key scoped to it, or a member with the role."""
    if isinstance(request.auth, ApiKey):
        key = serving_services.api_key_admit(
            request.user.key_auth
        )  # still live (a revoked key is refused), rate-limited
        if key.deployment_id != int(pk) or action not in (Action.PREDICT,):
            raise Http404("Not found.")
        return Deployment.objects.select_related("project", "model_version").get(pk=pk)
    return access(request.user, Deployment.objects.select_related("project", "model_version"), pk, action)


class AlertSerializer(serializers.ModelSerializer):
    deployment_name = serializers.CharField(source="deployment.name", read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "project",
            "deployment",
            "deployment_name",
            "key",
            "kind",
            "severity",
            "state",
            "message",
            "value",
            "threshold",
            "first_fired_at",
            "last_seen_at",
            "resolved_at",
            "acknowledged_by",
            "acknowledged_at",
        ]


def _retrain_payload(job) -> dict[str, Any]:
    return {
        "job": job.pk,
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
        "created_at": job.created_at,
        "result": job.result or None,
    }


def monitoring_payload(
    deployment: Deployment, range_key: str = selectors.DEFAULT_RANGE, *, show_destinations: bool = False
) -> dict[str, Any]:
    snap = selectors.snapshot_latest(deployment)
    return {
        "deployment": deployment.pk,
        "model_version": {"id": deployment.model_version_id, "version": deployment.model_version.version},
        "health": selectors.health(deployment),
        "settings": config.monitoring_settings_shown(deployment, show_destinations=show_destinations),
        "auto_retrain": deployment.auto_retrain,
        "latest": None
        if snap is None
        else {
            "id": snap.pk,
            "window_start": snap.window_start,
            "window_end": snap.window_end,
            "computed_at": snap.computed_at,
            **snap.data,
        },
        "range": range_key,
        "series": selectors.series(deployment, since=timezone.now() - selectors.RANGES[range_key]),
        "alerts": AlertSerializer(selectors.open_alerts(deployment), many=True).data,
        "retrains": [_retrain_payload(j) for j in selectors.retrain_jobs(deployment)],
    }


class FeedbackItemIn(serializers.Serializer):
    prediction_id = serializers.CharField()
    actual = serializers.JSONField()


class FeedbackIn(serializers.Serializer):
    prediction_id = serializers.CharField(required=False)
    actual = serializers.JSONField(required=False)
    items = FeedbackItemIn(many=True, required=False)


class WindowIn(serializers.Serializer):
    window_minutes = serializers.IntegerField(required=False, min_value=1)


class RetrainIn(serializers.Serializer):
    holdout_fraction = serializers.FloatField(required=False, min_value=0.05, max_value=0.9)


class PromoteIn(serializers.Serializer):
    model_version = serializers.IntegerField()


class FeedbackApi(APIView):
    authentication_classes = FEEDBACK_AUTH

    @extend_schema(request=FeedbackIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.PREDICT)
        body = request.data
        if not isinstance(body, dict):
            raise InvalidInput("A JSON object is required.", field="items")
        if "items" in body:
            items = body["items"]
        elif "prediction_id" in body or "actual" in body:
            if "prediction_id" not in body:
                raise InvalidInput("This field is required.", field="prediction_id")
            items = [{"prediction_id": body.get("prediction_id"), "actual": body.get("actual")}]
            if "actual" not in body:
                raise InvalidInput("This field is required.", field="actual")
        else:
            raise InvalidInput("Send {prediction_id, actual} or {items: [...]}.", field="items")
        if isinstance(request.auth, ApiKey):  # an application's key: audited as "key:<id>", no user
            actor, caller = None, f"key:{request.auth.pk}"
        else:
            actor, caller = request.user, ""
        result = feedback.feedback_record(deployment=deployment, items=items, actor=actor, caller=caller)
        return Response(result, status=status.HTTP_200_OK)


def _shows_destinations(request, deployment: Deployment) -> bool:
    return destinations_visible(request.user, deployment.project_id)


class EstimateSchema(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


class RealizedSchema(EstimateSchema):
    n_labels = serializers.IntegerField()


class EstimationSchema(serializers.Serializer):
    """A window's performance estimated before labels (docs/monitoring.md); regression: only
    status "not_estimated" and its reason."""

    status = serializers.ChoiceField(
        ["ok", "alert", "insufficient", "unreliable", "no_threshold", "not_estimable", "not_estimated"]
    )
    reason = serializers.CharField(required=False)
    metric = serializers.CharField(required=False, help_text="the metric judged (the project's success metric)")
    metrics = serializers.DictField(child=EstimateSchema(), required=False, help_text="every estimated metric")
    n_rows = serializers.IntegerField(required=False, help_text="predictions the estimate is over")
    min_rows = serializers.IntegerField(required=False)
    higher_is_better = serializers.BooleanField(required=False)
    reliable = serializers.BooleanField(required=False, help_text="the model's probabilities passed the check")
    calibration = serializers.JSONField(required=False, help_text="ece, ece_ci_low, ece_ci_high, p_value, n, source")
    calibration_text = serializers.CharField(required=False)
    threshold = serializers.FloatField(required=False, allow_null=True)
    threshold_source = serializers.CharField(required=False)
    realized = RealizedSchema(required=False, help_text="on the window's labelled rows so far")


class SnapshotSchema(serializers.Serializer):
    id = serializers.IntegerField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    computed_at = serializers.DateTimeField()
    traffic = serializers.JSONField()
    drift = serializers.JSONField()
    outputs = serializers.JSONField()
    quality = serializers.JSONField()
    performance = serializers.JSONField(help_text="live metrics from labels, each with its bootstrap interval")
    estimation = EstimationSchema()
    review = serializers.JSONField()


class SeriesEstimationSchema(serializers.Serializer):
    metric = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n_rows = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    realized = serializers.FloatField(allow_null=True)
    realized_low = serializers.FloatField(allow_null=True)
    realized_high = serializers.FloatField(allow_null=True)
    n_labels = serializers.IntegerField(allow_null=True)


class SeriesPointSchema(serializers.Serializer):
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    predictions = serializers.IntegerField(allow_null=True)
    requests = serializers.IntegerField(allow_null=True)
    max_psi = serializers.FloatField(allow_null=True)
    n_drifted = serializers.IntegerField(allow_null=True)
    performance = serializers.JSONField()
    n_labels = serializers.IntegerField(allow_null=True)
    estimation = SeriesEstimationSchema(allow_null=True)


class MonitoringSchema(serializers.Serializer):
    deployment = serializers.IntegerField()
    model_version = serializers.JSONField()
    health = serializers.JSONField()
    settings = serializers.JSONField()
    auto_retrain = serializers.BooleanField()
    latest = SnapshotSchema(allow_null=True)
    range = serializers.CharField()
    series = SeriesPointSchema(many=True)
    alerts = AlertSerializer(many=True)
    retrains = serializers.JSONField()


class MonitoringApi(APIView):
    @extend_schema(responses=MonitoringSchema)
    def get(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.VIEW)
        range_key = selectors.series_range(request.query_params.get("range"))
        shows = _shows_destinations(request, deployment)
        return Response(monitoring_payload(deployment, range_key, show_destinations=shows))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.MANAGE_DEPLOYMENTS)
        if not isinstance(request.data, dict):
            raise InvalidInput("A JSON object is required.", field="monitoring")
        values = dict(request.data)
        auto = values.pop("auto_retrain", None)
        deployment = config.monitoring_settings_update(
            deployment=deployment, actor=request.user, values=values, auto_retrain=auto
        )
        shown = config.monitoring_settings_shown(deployment, show_destinations=_shows_destinations(request, deployment))
        return Response({"settings": shown, "auto_retrain": deployment.auto_retrain})


class SnapshotApi(APIView):
    @extend_schema(request=WindowIn, responses={202: accepted_schema(JobSerializer)}, parameters=[location_header()])
    def post(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.MANAGE_DEPLOYMENTS)
        job = snapshots.snapshot_request(
            deployment=deployment, actor=request.user, window_minutes=request.data.get("window_minutes")
        )
        return accepted(JobSerializer(job, context={"request": request}).data, job)


class RetrainApi(APIView):
    @extend_schema(request=RetrainIn, responses={202: accepted_schema(JobSerializer)}, parameters=[location_header()])
    def post(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.MANAGE_DEPLOYMENTS)
        job = retrain.retrain_start(
            deployment=deployment,
            actor=request.user,
            holdout_fraction=request.data.get("holdout_fraction", 0.3),
        )
        return accepted(JobSerializer(job, context={"request": request}).data, job)


class ChallengerPromoteApi(APIView):
    @extend_schema(request=PromoteIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, pk: int):
        deployment = deployment_for(request, pk, Action.MANAGE_DEPLOYMENTS)
        mv_id = request.data.get("model_version")
        if mv_id is None:
            raise InvalidInput("This field is required.", field="model_version")
        try:
            challenger = ModelVersion.objects.get(pk=int(mv_id), project=deployment.project)
        except (ModelVersion.DoesNotExist, ValueError, TypeError):
            raise InvalidInput(f"No such model version in this project: {mv_id!r}.", field="model_version") from None
        deployment = retrain.challenger_promote(deployment=deployment, challenger=challenger, actor=request.user)
        return Response({"deployment": deployment.pk, "model_version": challenger.pk, "version": challenger.version})


class AlertListApi(ListAPIView):
    serializer_class = AlertSerializer
    ordering_fields = ["first_fired_at", "last_seen_at", "severity"]
    filterset_fields = ["project", "deployment", "state", "kind", "severity"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Alert.objects.none()
        return scope(Alert.objects.select_related("deployment", "acknowledged_by"), self.request.user).order_by(
            "-first_fired_at"
        )


class AlertAcknowledgeApi(APIView):
    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request, pk: int):
        # Acknowledging is an operational decision on the deployment: owners and editors.
        alert = access(request.user, Alert.objects.select_related("deployment"), pk, Action.MANAGE_DEPLOYMENTS)
        alert = alerts.alert_acknowledge(alert=alert, actor=request.user)
        return Response(AlertSerializer(alert).data)


urlpatterns = [
    path("deployments/<int:pk>/feedback/", FeedbackApi.as_view(), name="deployment-feedback"),
    path("deployments/<int:pk>/monitoring/", MonitoringApi.as_view(), name="deployment-monitoring"),
    path("deployments/<int:pk>/snapshot/", SnapshotApi.as_view(), name="deployment-snapshot"),
    path("deployments/<int:pk>/retrain/", RetrainApi.as_view(), name="deployment-retrain"),
    path(
        "deployments/<int:pk>/challenger/promote/", ChallengerPromoteApi.as_view(), name="deployment-challenger-promote"
    ),
    path("alerts/", AlertListApi.as_view(), name="alert-list"),
    path("alerts/<int:pk>/acknowledge/", AlertAcknowledgeApi.as_view(), name="alert-acknowledge"),
]
