"""REST API of rollout: deployments (list, create gated, detail with history and gate, policy
edits, promote, rollback, pause, resume, shadow, decision threshold, retire). Keys and batch jobs have their own rooms'
endpoints under the same paths (deployments.serving.apis, deployments.batch.apis)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from deployments.models import Deployment, ModelVersion
from deployments.registry.selectors import gate_check
from deployments.rollout import selectors, services
from mlplatform.api import ChoiceField
from mlplatform.errors import InvalidInput
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


class ChangeSerializer(serializers.Serializer):
    action = serializers.CharField()
    from_version = serializers.IntegerField(source="from_version.version", allow_null=True, default=None)
    to_version = serializers.IntegerField(source="to_version.version", allow_null=True, default=None)
    reason = serializers.CharField()
    gate = serializers.JSONField()
    details = serializers.JSONField()
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class DeploymentSerializer(serializers.ModelSerializer):
    active_version = serializers.IntegerField(source="model_version.version", read_only=True)
    shadow_version = serializers.IntegerField(source="shadow_model_version.version", read_only=True, default=None)
    predict_url = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    # The threshold serving applies now (None: the most probable class), see Deployment.active_threshold.
    decision_threshold = serializers.FloatField(source="active_threshold", read_only=True, allow_null=True)

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
            "prediction_retention_days",
            "gate_override",
            "decision_threshold",
            "retired_at",
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
    unknown_category_policy = ChoiceField(choices=services.UNKNOWN_POLICIES, default="error")
    allow_missing = serializers.BooleanField(default=True)
    max_instances = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    justification = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class DeploymentUpdateSerializer(serializers.Serializer):
    unknown_category_policy = ChoiceField(choices=services.UNKNOWN_POLICIES, required=False)
    allow_missing = serializers.BooleanField(required=False)
    max_instances = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    review_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    review_mode = ChoiceField(choices=["hold", "flag"], required=False)
    # Days logged predictions are kept (rows and columnar segments); null: settings.PREDICTION_RETENTION_DAYS.
    prediction_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=services.RETENTION_MAX_DAYS
    )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class PromoteSerializer(ReasonSerializer):
    model_version = serializers.IntegerField()
    justification = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class ThresholdSerializer(serializers.Serializer):
    threshold = serializers.FloatField(allow_null=True)  # None: back to the most probable class
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class CostApplySerializer(serializers.Serializer):
    threshold = serializers.FloatField(min_value=0, max_value=1)
    band = serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=1),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="[low, high]: positive-class probabilities in it go to review; null: no review band.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RetireSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _only(request, serializer_class) -> None:
    unknown = [k for k in request.data if k not in serializer_class().fields]
    if unknown:
        raise InvalidInput(f"Unexpected field {unknown[0]!r}.", field=str(unknown[0])[:100])


class ShadowSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    queryset = Deployment.objects.select_related("model_version", "shadow_model_version", "created_by", "project")
    serializer_class = DeploymentSerializer
    write_permission = Action.MANAGE_DEPLOYMENTS
    filterset_fields = ["project", "status"]
    ordering_fields = ["created_at", "name"]
    action_permissions = {"retire": Action.RETIRE_DEPLOYMENT}

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
        data["gate"] = gate_check(deployment.model_version, deployment.project).as_dict()
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

    @extend_schema(request=ThresholdSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get", "post"])
    def threshold(self, request, pk=None):
        """GET: the decision threshold, its history and its expected effect on validation rows.
        POST {"threshold": 0.35, "reason"?}: set it (null: back to the most probable class)."""
        deployment = self.get_object()
        if request.method == "POST":
            _only(request, ThresholdSerializer)
            body = ThresholdSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            deployment = services.deployment_set_threshold(
                deployment=deployment,
                actor=request.user,
                threshold=body.validated_data["threshold"],
                reason=body.validated_data["reason"],
            )
        effect = selectors.threshold_effect(deployment)
        history = ChangeSerializer(selectors.threshold_history(deployment)[:100], many=True).data
        return Response(
            {
                "deployment": deployment.pk,
                "threshold": deployment.active_threshold,
                "effective_threshold": effect["effective"],
                "positive_class": effect["positive_class"],
                "binary": effect["binary"],
                "validation": {k: effect.get(k) for k in ("available", "why", "n_val", "rows", "best_f1")},
                "history": history,
            }
        )

    @extend_schema(request=CostApplySerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get", "post"])
    def costs(self, request, pk=None):
        """GET: decisions by cost: the expected cost per decision of each threshold and review band
        under the project's cost matrix, on validation rows and re-estimated from reviewer
        decisions, with 95% intervals, the current setting's cost and advice (only when the
        saving's interval is above zero). POST {"threshold", "band": [low, high] | null,
        "reason"?}: apply a threshold and band (audited), e.g. the advice."""
        deployment = self.get_object()
        if request.method == "POST":
            _only(request, CostApplySerializer)
            body = CostApplySerializer(data=request.data)
            body.is_valid(raise_exception=True)
            v = body.validated_data
            deployment = services.deployment_apply_costs(
                deployment=deployment, actor=request.user, threshold=v["threshold"], band=v["band"], reason=v["reason"]
            )
        effect = selectors.cost_effect(deployment)
        validation = effect.get("validation") or {}
        return Response(
            {
                "deployment": deployment.pk,
                "threshold": deployment.active_threshold,
                **{k: effect.get(k) for k in ("available", "why", "positive_class", "unit", "cost_matrix", "current")},
                "validation": {k: v for k, v in validation.items() if k != "chart"} or None,
                "live": {k: v for k, v in (effect.get("live") or {}).items() if k != "chart"} or None,
                "advice": effect.get("advice"),
            }
        )

    @extend_schema(request=RetireSerializer, responses=DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request, pk=None):
        """Shut the deployment down for good (owner): predict answers 410 from now on."""
        deployment = self.get_object()
        _only(request, RetireSerializer)
        body = RetireSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = services.deployment_retire(deployment=deployment, actor=request.user, reason=body.validated_data["reason"])
        return Response(DeploymentSerializer(d).data)


def register(router) -> None:
    """Register viewsets on the shared /api/v1/ router."""
    router.register("deployments", DeploymentViewSet, basename="deployment")
