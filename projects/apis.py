from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from mlplatform.api import ChoiceField
from projects import services, webhook_settings
from projects.access import forget_roles, require
from projects.destinations import destinations_visible
from projects.metrics import TaskType
from projects.models import AssumptionStatus, AuditEvent, Decision, GateStrictness, Membership, Project
from projects.roles import Action, Role
from projects.viewsets import ProjectScopedViewSet
from projects.workflow import workflow_for

User = get_user_model()


class AssumptionSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=500)
    status = ChoiceField(choices=AssumptionStatus.choices, default=AssumptionStatus.UNCHECKED)
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ProjectSerializer(serializers.ModelSerializer):
    assumptions = AssumptionSerializer(many=True, required=False)
    decision = ChoiceField(choices=Decision.choices, required=False)
    decision_rationale = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    task_type = ChoiceField(choices=TaskType.choices)
    gate_strictness = ChoiceField(choices=GateStrictness.choices, required=False)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    my_role = serializers.SerializerMethodField()
    webhook_url = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=200,
        help_text="Where events are POSTed. Shown to roles that manage connections (owners), null to "
        "others; changed only by them (null in a request leaves it unchanged, '' clears it).",
    )

    cost_matrix = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Optional, binary classification: {unit, false_positive, false_negative, review?, true_positive?, "
        "true_negative?}, non-negative numbers in `unit` per decision; null: none. Drives the cost analysis of "
        "runs and deployments.",
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "task_type",
            "objective",
            "usage",
            "current_solution",
            "success_metric",
            "success_threshold",
            "baseline_score",
            "assumptions",
            "decision",
            "decision_rationale",
            "decided_by",
            "decided_at",
            "gate_strictness",
            "cost_matrix",
            "webhook_url",
            "created_by",
            "created_at",
            "updated_at",
            "my_role",
        ]
        read_only_fields = ["decided_by", "decided_at", "created_by", "created_at", "updated_at"]

    def to_representation(self, project: Project) -> dict:
        data = super().to_representation(project)
        request = self.context.get("request")
        # A webhook URL often carries its receiver's token (chat and ticketing hooks do).
        if request is None or not destinations_visible(request.user, project):
            data["webhook_url"] = None
        return data

    def get_my_role(self, project: Project) -> str | None:
        from projects.access import role_of

        request = self.context.get("request")
        role = role_of(request.user, project) if request else None
        return role.value if role else None


class ProjectCreatedSerializer(ProjectSerializer):
    webhook_secret = serializers.CharField(
        read_only=True, help_text="The webhook signing secret, shown in this response only (rotate to get a new one)."
    )

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "webhook_secret"]


class WebhookSerializer(serializers.Serializer):
    url = serializers.CharField(allow_blank=True)
    secret_set = serializers.BooleanField()
    secret_created_at = serializers.DateTimeField(allow_null=True)
    secret_shown = serializers.BooleanField()


class WebhookInput(serializers.Serializer):
    url = serializers.CharField(allow_blank=True, max_length=2000)


class WebhookSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown once: store it where the receiver checks signatures.")


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(source="user.id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    added_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "added_by", "created_at"]


class MemberInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = ChoiceField(choices=Role.choices)


class RoleInput(serializers.Serializer):
    role = ChoiceField(choices=Role.choices)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "actor", "action", "object_type", "object_id", "object_repr", "data", "created_at"]


class WorkflowStageSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    state = ChoiceField(choices=["done", "in_progress", "blocked", "todo"])
    detail = serializers.CharField()
    next_step = serializers.CharField()
    url = serializers.CharField()
    extra = serializers.DictField()


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ProjectScopedViewSet,
):
    """Projects with their problem statement. The creator becomes the owner."""

    queryset = Project.objects.select_related("decided_by", "created_by")
    serializer_class = ProjectSerializer
    filterset_fields = ["task_type", "decision"]
    ordering_fields = ["created_at", "name", "updated_at"]
    write_permission = Action.EDIT_PROJECT
    action_permissions = {
        "destroy": Action.DELETE_PROJECT,
        "members": Action.VIEW,
        "audit": Action.VIEW_AUDIT,
        "workflow": Action.VIEW,
        "webhook": Action.MANAGE_CONNECTIONS,
        "webhook_rotate": Action.MANAGE_CONNECTIONS,
    }

    @extend_schema(request=ProjectSerializer, responses={201: ProjectCreatedSerializer})
    def create(self, request):
        data = ProjectSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        decision = values.pop("decision", None)
        rationale = values.pop("decision_rationale", "")
        values["webhook_url"] = values.get("webhook_url") or ""
        project = services.project_create(created_by=request.user, **values)
        if decision and decision != Decision.PENDING:
            project = services.project_decide(
                project=project, actor=request.user, decision=decision, rationale=rationale
            )
        body = ProjectSerializer(project, context={"request": request}).data
        body["webhook_secret"] = webhook_settings.project_webhook_secret_reveal(project=project, actor=request.user)
        return Response(body, status=status.HTTP_201_CREATED)

    def _update(self, request, partial: bool):
        project = self.get_object()
        data = ProjectSerializer(project, data=request.data, partial=partial, context={"request": request})
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        decision = values.pop("decision", None)
        rationale = values.pop("decision_rationale", None)
        if values.get("webhook_url", "") is None:
            values.pop("webhook_url")  # what other roles read back: "unchanged"
        if values:
            project = services.project_update(project=project, actor=request.user, **values)
        if decision is not None or rationale is not None:
            require(request.user, project, Action.DECIDE)
            project = services.project_decide(
                project=project,
                actor=request.user,
                decision=decision or project.decision,
                rationale=rationale if rationale is not None else project.decision_rationale,
            )
        return Response(ProjectSerializer(project, context={"request": request}).data)

    def update(self, request, pk=None):
        return self._update(request, partial=False)

    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def destroy(self, request, pk=None):
        services.project_delete(project=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=MemberInput, responses=MemberSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def members(self, request, pk=None):
        if request.method == "GET":
            project = self.get_object()
            return Response(MemberSerializer(project.memberships.select_related("user", "added_by"), many=True).data)
        project = self.get_object()
        require(request.user, project, Action.MANAGE_MEMBERS)
        data = MemberInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(project=project, actor=request.user, **data.validated_data)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RoleInput,
        responses=MemberSerializer,
        parameters=[OpenApiParameter("user_id", int, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<user_id>[^/.]+)")
    def member(self, request, pk=None, user_id=None):
        project = self.get_object()
        require(request.user, project, Action.MANAGE_MEMBERS)
        membership = (
            Membership.objects.select_related("user", "project").filter(project=project, user_id=_int(user_id)).first()
        )
        if membership is None:
            raise Http404("No such member.")
        if request.method == "DELETE":
            services.member_remove(membership=membership, actor=request.user)
            forget_roles(request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        data = RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_update(membership=membership, actor=request.user, role=data.validated_data["role"])
        forget_roles(request.user)
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=None, responses=AuditEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def audit(self, request, pk=None):
        project = self.get_object()
        page = self.paginate_queryset(AuditEvent.objects.filter(project=project))
        return self.get_paginated_response(AuditEventSerializer(page, many=True).data)

    @extend_schema(request=WebhookInput, responses=WebhookSerializer)
    @action(detail=True, methods=["get", "patch"])
    def webhook(self, request, pk=None):
        """The project's webhook (owners): its URL and when its signing secret was made."""
        project = self.get_object()
        if request.method == "PATCH":
            body = WebhookInput(data=request.data)
            body.is_valid(raise_exception=True)
            project = webhook_settings.project_webhook_update(
                project=project, actor=request.user, url=body.validated_data["url"], field="url"
            )
        return Response(webhook_settings.project_webhook_of(project))

    @extend_schema(request=None, responses=WebhookSecretSerializer)
    @action(detail=True, methods=["post"], url_path="webhook/rotate")
    def webhook_rotate(self, request, pk=None):
        """A new signing secret, in this response only. Deliveries already queued keep the old one."""
        project, secret = webhook_settings.project_webhook_rotate(project=self.get_object(), actor=request.user)
        return Response({**webhook_settings.project_webhook_of(project), "secret": secret})

    @extend_schema(request=None, responses=WorkflowStageSerializer(many=True))
    @action(detail=True, methods=["get"])
    def workflow(self, request, pk=None):
        project = self.get_object()
        return Response([stage.__dict__ for stage in workflow_for(project=project, user=request.user)])


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Http404("No such member.") from None
