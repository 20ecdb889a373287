"""Review queue API: /api/v1/reviews/ and /api/v1/deployments/{id}/review-health/."""

from __future__ import annotations

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from deployments.models import ApiKey, Deployment, ReviewItem
from deployments.reviews import context, selectors, services
from mlplatform.errors import InvalidInput
from projects.access import access
from projects.destinations import destinations_visible
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet

ORDERS = ("oldest", "least_confident", "newest")


def _api_key(request) -> ApiKey | None:
    """The deployment API key that authenticated this request, if any (set by the API-key
    authentication class as `request.auth`)."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) and auth.revoked_at is None else None


class ReviewItemSerializer(serializers.ModelSerializer):
    prediction_id = serializers.UUIDField(source="prediction.id", read_only=True)
    inputs = serializers.JSONField(source="prediction.inputs", read_only=True)
    probabilities = serializers.JSONField(source="prediction.probabilities", read_only=True)
    prediction_created_at = serializers.DateTimeField(source="prediction.created_at", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    claimed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    final = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "project",
            "deployment",
            "prediction_id",
            "status",
            "final",
            "reason",
            "mode",
            "confidence",
            "model_label",
            "final_label",
            "probabilities",
            "inputs",
            "sample_weight",
            "novelty",
            "comment",
            "claimed_by",
            "claimed_until",
            "decided_by",
            "decided_at",
            "created_at",
            "prediction_created_at",
        ]

    def get_final(self, item: ReviewItem) -> bool:
        return item.status in selectors.DECIDED


class DecisionInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_COMMENT, default="")


class OverrideInput(DecisionInput):
    label = serializers.JSONField()


class ClaimInput(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=120, default=services.CLAIM_MINUTES)


class BulkInput(DecisionInput):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)


class ReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """The review queue. Reading needs any role; deciding needs reviewer, editor or owner.

    A hold-mode client polls `GET /api/v1/reviews/{id}/` until `final` is true, then reads
    `final_label`.
    """

    queryset = ReviewItem.objects.select_related(
        "prediction__model_version", "deployment", "project", "decided_by", "claimed_by"
    )
    serializer_class = ReviewItemSerializer
    filterset_fields = ["project", "deployment", "status", "reason", "mode"]
    ordering_fields = ["created_at", "confidence", "decided_at"]
    write_permission = Action.REVIEW
    action_permissions = {"detail_view": Action.VIEW}

    def get_permissions(self):
        # A calling application holding its deployment's API key may poll its held predictions.
        if self.action == "retrieve" and _api_key(self.request) is not None:
            return []
        return super().get_permissions()

    def retrieve(self, request, *args, **kwargs):
        key = _api_key(request)
        if key is None:
            return super().retrieve(request, *args, **kwargs)
        try:
            item = ReviewItem.objects.get(pk=int(kwargs["pk"]), deployment_id=key.deployment_id)
        except (ReviewItem.DoesNotExist, ValueError, TypeError):
            raise Http404("Not found.") from None
        return Response(selectors.review_public(item))

    def get_queryset(self):
        qs = super().get_queryset()
        order = self.request.query_params.get("order", "oldest")
        if order not in ORDERS:
            raise InvalidInput(f"Choose one of {', '.join(ORDERS)}.", field="order")
        if order == "least_confident":
            return qs.order_by("confidence", "created_at", "pk")
        if order == "newest":
            return qs.order_by("-created_at", "-pk")
        return qs.order_by("created_at", "pk")

    @extend_schema(
        parameters=[
            OpenApiParameter("order", str, enum=list(ORDERS)),
            OpenApiParameter("unclaimed", bool, description="Skip items claimed by another reviewer"),
        ]
    )
    def list(self, request, *args, **kwargs):
        qs = self.filter_queryset(self.get_queryset())
        if request.query_params.get("unclaimed") in ("1", "true"):
            from django.utils import timezone

            qs = qs.filter(selectors.claim_free(request.user, timezone.now()))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def _decide(self, request, decision: str, serializer_class):
        item = self.get_object()
        data = serializer_class(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.review_decide(
            item=item,
            actor=request.user,
            action=decision,
            label=data.validated_data.get("label"),
            comment=data.validated_data.get("comment", ""),
        )
        return Response(ReviewItemSerializer(item).data)

    @extend_schema(request=DecisionInput, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, "approve", DecisionInput)

    @extend_schema(request=OverrideInput, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def override(self, request, pk=None):
        return self._decide(request, "override", OverrideInput)

    @extend_schema(request=DecisionInput, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def escalate(self, request, pk=None):
        return self._decide(request, "escalate", DecisionInput)

    @extend_schema(request=ClaimInput, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        item = self.get_object()
        data = ClaimInput(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.review_claim(item=item, actor=request.user, minutes=data.validated_data["minutes"])
        return Response(ReviewItemSerializer(item).data)

    @extend_schema(request=None, responses=ReviewItemSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        item = services.review_release(item=self.get_object(), actor=request.user)
        return Response(ReviewItemSerializer(item).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["get"], url_path="context")
    def detail_view(self, request, pk=None):
        """Features vs training distribution, probabilities, attribution, similar decisions."""
        item = self.get_object()
        return Response(context.review_item_detail(item=item))

    @extend_schema(request=BulkInput, responses={200: dict})
    @action(detail=False, methods=["post"], url_path="bulk-approve")
    def bulk_approve(self, request):
        data = BulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.review_bulk_approve(
            user=request.user, ids=data.validated_data["ids"], comment=data.validated_data["comment"]
        )
        return Response(result)


class ReviewHealthApi(APIView):
    """Queue health of one deployment: pending, age, time to decision, override rates,
    reviewers, QC-sample accuracy estimate and threshold advice."""

    @extend_schema(responses={200: dict})
    def get(self, request, pk: int):
        deployment = access(request.user, Deployment.objects.all(), pk, Action.VIEW)
        return Response(selectors.review_health(deployment=deployment))


class ReviewPolicyApi(APIView):
    """A deployment's review policy: read with any role, change with manage_deployments.

    Body fields (all optional): review_threshold (0..1 or null), review_mode (hold|flag),
    review_policy {class_thresholds, always_review, sample_rate, novelty_rate}, review_sla_minutes,
    review_webhook_url (owners only: roles that manage connections). Deliveries are signed with
    the project's webhook secret; the URL is shown only to those who may change it (it often
    carries the receiver's token), others read null and review_webhook_set.
    """

    @extend_schema(responses={200: dict})
    def get(self, request, pk: int):
        deployment = access(request.user, Deployment.objects.all(), pk, Action.VIEW)
        return Response(self._out(request, deployment))

    @extend_schema(request=dict, responses={200: dict})
    def patch(self, request, pk: int):
        deployment = access(request.user, Deployment.objects.all(), pk, Action.MANAGE_DEPLOYMENTS)
        if not isinstance(request.data, dict):
            raise InvalidInput("Send a JSON object.", field="non_field_errors")
        allowed = {"review_threshold", "review_mode", "review_policy", "review_sla_minutes", "review_webhook_url"}
        unknown = sorted(set(request.data) - allowed)
        if unknown:
            raise InvalidInput(f"Unknown field {unknown[0]!r}.", field=unknown[0])
        deployment = services.review_policy_update(deployment=deployment, actor=request.user, **request.data)
        return Response(self._out(request, deployment))

    def _out(self, request, deployment):
        body = selectors.review_policy_of(deployment)
        if not destinations_visible(request.user, deployment.project_id):
            body["review_webhook_url"] = None
        return body


urlpatterns: list = [
    path("deployments/<int:pk>/review-policy/", ReviewPolicyApi.as_view(), name="deployment-review-policy"),
    path("deployments/<int:pk>/review-health/", ReviewHealthApi.as_view(), name="deployment-review-health"),
]


def register(router) -> None:
    """Register viewsets on the shared /api/v1/ router."""
    router.register("reviews", ReviewViewSet, basename="review")
