"""Writes on projects, members and the audit log. Keyword-only, one transaction each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from mlplatform.errors import Conflict, InvalidInput
from projects.cost_matrix import CostMatrixError, cost_matrix_parse
from projects.events import AuditAction, audit_action
from projects.metrics import DEFAULT_METRIC, METRICS, TaskType, metrics_for
from projects.models import AssumptionStatus, AuditEvent, Decision, Membership, Project
from projects.roles import Role

User = get_user_model()

PROBLEM_FIELDS = (
    "name",
    "objective",
    "usage",
    "current_solution",
    "task_type",
    "success_metric",
    "success_threshold",
    "baseline_score",
    "assumptions",
    "gate_strictness",
    "cost_matrix",
)
# The webhook URL is not part of the problem statement: where data goes is an owner's decision
# (projects.destinations), changed through its own checks.
_UNSET: Any = object()


def audit_record(
    *,
    actor: Any,
    action: AuditAction | str,
    project: Project | None = None,
    obj: Model | None = None,
    data: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records.

    `action` is an `AuditAction` (a string is accepted only when it is one): anything else raises.
    """
    action = audit_action(action)
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        project=project,
        actor=actor if is_user else None,
        actor_label=actor_label or (actor.get_username() if is_user else str(actor or "system")),
        action=action.value,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        data=data or {},
    )


def validate_problem(values: dict[str, Any]) -> None:
    """Cross-field rules of a problem statement; raises InvalidInput naming the field."""
    task_type = values.get("task_type")
    if task_type not in TaskType.values:
        raise InvalidInput(f"Choose one of {', '.join(TaskType.values)}.", field="task_type")
    metric = values.get("success_metric") or ""
    if metric:
        if metric not in METRICS:
            raise InvalidInput(
                f"Unknown metric {metric!r}; choose one of {', '.join(metrics_for(task_type))}.", field="success_metric"
            )
        if METRICS[metric].task_type != task_type:
            raise InvalidInput(
                f"{metric!r} is not a {task_type} metric; choose one of {', '.join(metrics_for(task_type))}.",
                field="success_metric",
            )
    for name in ("success_threshold", "baseline_score"):
        value = values.get(name)
        if value is None:
            continue
        if value < 0:
            raise InvalidInput("Must not be negative.", field=name)
        if metric and METRICS[metric].bounded_01 and value > 1:
            raise InvalidInput(f"{metric} lies between 0 and 1; got {value}.", field=name)
    _validate_cost_matrix(values)
    assumptions = values.get("assumptions") or []
    if not isinstance(assumptions, list):
        raise InvalidInput("Must be a list of assumptions.", field="assumptions")
    for i, item in enumerate(assumptions):
        if not isinstance(item, dict) or not str(item.get("text", "")).strip():
            raise InvalidInput(f"Item {i} needs a non-empty 'text'.", field="assumptions")
        if item.get("status", AssumptionStatus.UNCHECKED) not in AssumptionStatus.values:
            raise InvalidInput(
                f"Item {i}: status must be one of {', '.join(AssumptionStatus.values)}.", field="assumptions"
            )


def _validate_cost_matrix(values: dict[str, Any]) -> None:
    """The optional cost matrix (decisions by cost): binary classification only; stored normalised."""
    try:
        cm = cost_matrix_parse(values.get("cost_matrix"))
    except CostMatrixError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    if cm is not None and values.get("task_type") != TaskType.CLASSIFICATION:
        raise InvalidInput("A cost matrix applies to a (binary) classification project.", field="cost_matrix")
    values["cost_matrix"] = cm.as_dict() if cm is not None else None


def _normalise_assumptions(items: list[Any]) -> list[dict[str, str]]:
    return [
        {
            "text": str(item["text"]).strip(),
            "status": item.get("status") or AssumptionStatus.UNCHECKED,
            "note": str(item.get("note") or ""),
        }
        for item in items
    ]


@transaction.atomic
def project_create(*, created_by: Any, name: str, task_type: str, webhook_url: str = "", **problem: Any) -> Project:
    """A project, its owner (the creator) and its webhook signing secret (shown once, to the
    creator: the API returns it in the create response)."""
    from projects.destinations import destination_check
    from projects.webhook_settings import webhook_secret_new

    values = {"name": name, "task_type": task_type, **problem}
    if not values.get("success_metric") and task_type in TaskType.values:
        values["success_metric"] = DEFAULT_METRIC[TaskType(task_type)]
    validate_problem(values)
    values["assumptions"] = _normalise_assumptions(values.get("assumptions") or [])
    unknown = set(values) - set(PROBLEM_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    # The creator is the owner: the role check passes; the URL policy applies.
    url = destination_check(actor=None, project=Project(), field="webhook_url", value=webhook_url)
    project = Project.objects.create(
        created_by=created_by,
        webhook_url=url,
        webhook_secret=webhook_secret_new(),
        webhook_secret_created_at=timezone.now(),
        **values,
    )
    Membership.objects.create(project=project, user=created_by, role=Role.OWNER, added_by=created_by)
    audit_record(actor=created_by, action=AuditAction.PROJECT_CREATED, project=project, obj=project)
    if url:
        audit_record(
            actor=created_by,
            action=AuditAction.DESTINATION_CHANGED,
            project=project,
            obj=project,
            data={"field": "webhook_url", "from": "", "to": url},
        )
    return project


@transaction.atomic
def project_update(*, project: Project, actor: Any, webhook_url: Any = _UNSET, **changes: Any) -> Project:
    if webhook_url is not _UNSET and (webhook_url or "") != project.webhook_url:
        from projects.webhook_settings import project_webhook_update

        project = project_webhook_update(project=project, actor=actor, url=webhook_url)
    unknown = set(changes) - set(PROBLEM_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    values = {f: getattr(project, f) for f in PROBLEM_FIELDS} | changes
    if "task_type" in changes and changes["task_type"] != project.task_type and "success_metric" not in changes:
        # Switching the task type resets the metric rather than keeping one that no longer fits.
        values["success_metric"] = (
            DEFAULT_METRIC[TaskType(changes["task_type"])] if changes["task_type"] in TaskType.values else ""
        )
    validate_problem(values)
    values["assumptions"] = _normalise_assumptions(values.get("assumptions") or [])
    before = {f: getattr(project, f) for f in values}
    for name, value in values.items():
        setattr(project, name, value)
    project.save()
    changed = {f: {"from": before[f], "to": values[f]} for f in values if before[f] != values[f]}
    if changed:
        audit_record(
            actor=actor, action=AuditAction.PROJECT_UPDATED, project=project, obj=project, data={"changed": changed}
        )
    return project


@transaction.atomic
def project_decide(*, project: Project, actor: Any, decision: str, rationale: str) -> Project:
    if decision not in Decision.values:
        raise InvalidInput(f"Choose one of {', '.join(Decision.values)}.", field="decision")
    if decision != Decision.PENDING and not rationale.strip():
        raise InvalidInput("Explain the decision.", field="decision_rationale")
    project.decision = decision
    project.decision_rationale = rationale.strip()
    project.decided_by = actor if decision != Decision.PENDING else None
    project.decided_at = timezone.now() if decision != Decision.PENDING else None
    project.save(update_fields=["decision", "decision_rationale", "decided_by", "decided_at", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.PROJECT_DECIDED,
        project=project,
        obj=project,
        data={"decision": decision, "rationale": project.decision_rationale},
    )
    return project


@transaction.atomic
def project_delete(*, project: Project, actor: Any) -> None:
    audit_record(
        actor=actor, action=AuditAction.PROJECT_DELETED, project=None, obj=project, data={"name": project.name}
    )
    # Deployments protect their model versions and experiments their dataset versions (nothing
    # in use disappears by accident); deleting the whole project removes them in dependency order.
    # Through the reverse relations: projects imports none of the apps built on it.
    project.deployments.all().delete()
    project.model_versions.all().delete()
    project.experiments.all().delete()
    project.delete()


def _lock_owners(project: Project) -> int:
    # Lock the project's membership rows so two owners demoting each other at once cannot
    # leave a project without an owner.
    return len(list(Membership.objects.select_for_update().filter(project=project, role=Role.OWNER)))


@transaction.atomic
def member_add(*, project: Project, actor: Any, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise InvalidInput(f"No active user named {username!r}.", field="username")
    if Membership.objects.filter(project=project, user=user).exists():
        raise Conflict(f"{username} is already a member; change their role instead.", field="username")
    membership = Membership.objects.create(project=project, user=user, role=role, added_by=actor)
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_ADDED,
        project=project,
        obj=membership,
        data={"username": username, "role": role},
    )
    return membership


@transaction.atomic
def member_update(*, membership: Membership, actor: Any, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", field="role")
    owners = _lock_owners(membership.project)
    if membership.role == Role.OWNER and role != Role.OWNER and owners <= 1:
        raise InvalidInput("A project needs at least one owner; add another owner first.", field="role")
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_ROLE_CHANGED,
        project=membership.project,
        obj=membership,
        data={"username": membership.user.get_username(), "from": before, "to": role},
    )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Any) -> None:
    owners = _lock_owners(membership.project)
    if membership.role == Role.OWNER and owners <= 1:
        raise InvalidInput("The last owner cannot leave; add another owner first.", field="user")
    audit_record(
        actor=actor,
        action=AuditAction.MEMBER_REMOVED,
        project=membership.project,
        obj=membership,
        data={"username": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()


@dataclass
class StageState:
    """One stage of the workflow picture on a project's overview."""

    key: str
    label: str
    state: str  # done | in_progress | blocked | todo
    detail: str = ""
    next_step: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
