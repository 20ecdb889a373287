"""Rollout's writes: deploy a version (gated), promote another, roll back, pause, resume, shadow,
change the serving policy and the decision threshold, retire. Every change is one transaction with its history row, its audit
event and (after commit) its webhook."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.events import (
    deployment_created_event,
    deployment_promoted_event,
    deployment_retired_event,
    deployment_rolled_back_event,
    deployment_shadow_set_event,
    deployment_status_event,
    deployment_threshold_set_event,
    deployment_updated_event,
    gate_overridden_event,
)
from deployments.models import (
    Alert,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    ModelVersion,
    ReviewMode,
)
from deployments.registry.selectors import GateResult, gate_check, version_unready_reason
from deployments.reviews.services import review_items_close, review_policy_update
from deployments.rollout.selectors import is_binary, previous_version
from jobs.webhooks import project_event
from mlplatform.errors import Conflict, InvalidInput, PermissionDenied
from projects.access import can
from projects.models import Project
from projects.roles import Action

UNKNOWN_POLICIES = ("error", "allow")
UPDATABLE = (
    "unknown_category_policy",
    "allow_missing",
    "max_instances",
    "review_threshold",
    "review_mode",
    "prediction_retention_days",
)
RETENTION_MAX_DAYS = 3650


def _require_ready(model_version: ModelVersion, field: str) -> None:
    """Only a version whose input schema and drift reference are built can serve (no override)."""
    why = version_unready_reason(model_version)
    if why:
        raise Conflict(why, field=field)


def _lock_servable(model_version: ModelVersion, field: str) -> None:
    """In the caller's transaction, before it points a deployment at the version: lock the version's
    row and check again. The model retention archives under the same lock and skips versions a
    deployment uses, so a version is never archived while being deployed, nor deployed archived."""
    _require_ready(ModelVersion.objects.select_for_update().get(pk=model_version.pk), field)


def _require_live(deployment: Deployment) -> None:
    """A retired deployment is shut down for good: nothing changes it again (read the row locked)."""
    if deployment.status == DeploymentStatus.RETIRED:
        raise Conflict(
            f"The deployment “{deployment.name}” is retired: it cannot be changed or restarted. "
            "Deploy the version again under a new name.",
            field="status",
        )


def _gate_or_override(
    *, project: Project, model_version: ModelVersion, actor: Any, justification: str
) -> tuple[GateResult, dict | None]:
    gate = gate_check(model_version, project)
    if gate.passed:
        return gate, None
    justification = (justification or "").strip()
    if not justification:
        raise Conflict(
            "This version does not pass the promotion gate: " + " ".join(gate.reasons),
            errors={"model_version": gate.reasons},
        )
    if not can(actor, project, Action.OVERRIDE_GATE):
        raise PermissionDenied("Only a project owner can override the promotion gate.")
    if len(justification) < 20:
        raise InvalidInput("Write a justification of at least 20 characters.", field="justification")
    override = {
        "by": actor.get_username(),
        "at": timezone.now().isoformat(),
        "justification": justification,
        "gate": gate.as_dict(),
        "version": model_version.version,
    }
    return gate, override


def _check_policy(*, unknown_category_policy: Any = None, review_threshold: Any = None, max_instances: Any = None):
    if unknown_category_policy is not None and unknown_category_policy not in UNKNOWN_POLICIES:
        raise InvalidInput("Choose error or allow.", field="unknown_category_policy")
    if review_threshold is not None and not 0 <= review_threshold <= 1:
        raise InvalidInput("The review threshold is a confidence between 0 and 1.", field="review_threshold")
    if max_instances is not None and not 1 <= max_instances <= settings.PREDICT_MAX_INSTANCES:
        raise InvalidInput(f"Between 1 and {settings.PREDICT_MAX_INSTANCES}.", field="max_instances")


def deployment_create(
    *,
    project: Project,
    actor: Any,
    name: str,
    model_version: ModelVersion,
    review_threshold: float | None = None,
    unknown_category_policy: str = "error",
    allow_missing: bool = True,
    max_instances: int | None = None,
    justification: str = "",
) -> Deployment:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the deployment a name.", field="name")
    _check_policy(
        unknown_category_policy=unknown_category_policy, review_threshold=review_threshold, max_instances=max_instances
    )
    if model_version.project_id != project.pk:
        raise InvalidInput("No such model version in this project.", field="model_version")
    if Deployment.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A deployment named “{name}” already exists.", field="name")
    _require_ready(model_version, "model_version")
    gate, override = _gate_or_override(
        project=project, model_version=model_version, actor=actor, justification=justification
    )
    with transaction.atomic():
        _lock_servable(model_version, "model_version")
        deployment = Deployment.objects.create(
            project=project,
            name=name,
            model_version=model_version,
            review_threshold=review_threshold,
            unknown_category_policy=unknown_category_policy,
            allow_missing=allow_missing,
            max_instances=max_instances,
            gate_override=override,
            created_by=actor,
        )
        DeploymentChange.objects.create(
            project=project,
            deployment=deployment,
            action="deploy",
            to_version=model_version,
            reason=override["justification"] if override else "",
            gate=gate.as_dict(),
            actor=actor,
        )
        deployment_created_event(actor=actor, deployment=deployment, version=model_version, gate=gate.as_dict())
        _notify(deployment=deployment, event="deployment.deployed", version=model_version, override=override)
    return deployment


def _notify(*, deployment, event, version, override=None, extra=None) -> None:
    """The project's webhook (after commit), and the gate override's audit event and webhook."""
    project = deployment.project
    payload = {
        "deployment": {"id": deployment.pk, "name": deployment.name},
        "model_version": {"id": version.pk, "version": version.version},
        **(extra or {}),
    }
    project_event(project=project, event=event, payload=payload)
    if override:
        gate_overridden_event(deployment=deployment, override=override)
        project_event(project=project, event="gate.overridden", payload={**payload, "override": override})


def deployment_promote(
    *, deployment: Deployment, actor: Any, model_version: ModelVersion, reason: str = "", justification: str = ""
) -> Deployment:
    """Point the deployment at another version (gated, like a new deployment)."""
    project = deployment.project
    if model_version.project_id != project.pk:
        raise InvalidInput("No such model version in this project.", field="model_version")
    if model_version.pk == deployment.model_version_id:
        raise Conflict("This version is already the active one.", field="model_version")
    _require_ready(model_version, "model_version")
    gate, override = _gate_or_override(
        project=project, model_version=model_version, actor=actor, justification=justification
    )
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        _require_live(d)
        _lock_servable(model_version, "model_version")
        previous = d.model_version
        d.model_version = model_version
        if override:
            d.gate_override = override
        elif d.gate_override:
            d.gate_override = None
        d.save(update_fields=["model_version", "gate_override", "updated_at"])
        DeploymentChange.objects.create(
            project=project,
            deployment=d,
            action="promote",
            from_version=previous,
            to_version=model_version,
            reason=(reason or "").strip() or (override or {}).get("justification", ""),
            gate=gate.as_dict(),
            actor=actor,
        )
        deployment_promoted_event(actor=actor, deployment=d, previous=previous, version=model_version, reason=reason)
        _notify(deployment=d, event="deployment.deployed", version=model_version, override=override)
    return d


def deployment_update(*, deployment: Deployment, actor: Any, **changes: Any) -> Deployment:
    """Change a deployment's serving policy (validation, review threshold and mode); audited."""
    unknown = [k for k in changes if k not in UPDATABLE]
    if unknown:
        raise InvalidInput(f"This field cannot be changed here: {unknown[0]}.", field=unknown[0])
    _check_policy(
        unknown_category_policy=changes.get("unknown_category_policy"),
        review_threshold=changes.get("review_threshold"),
        max_instances=changes.get("max_instances"),
    )
    days = changes.get("prediction_retention_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= RETENTION_MAX_DAYS
    ):
        raise InvalidInput(
            f"Days between 1 and {RETENTION_MAX_DAYS} (empty: the platform default).", field="prediction_retention_days"
        )
    if "review_mode" in changes and changes["review_mode"] not in ReviewMode.values:
        raise InvalidInput("Choose hold or flag.", field="review_mode")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        _require_live(d)
        before = {k: getattr(d, k) for k in changes}
        for k, v in changes.items():
            setattr(d, k, v)
        d.save(update_fields=[*changes, "updated_at"])
        deployment_updated_event(actor=actor, deployment=d, before=before, after=changes)
    return d


def deployment_rollback(*, deployment: Deployment, actor: Any, reason: str = "") -> Deployment:
    """Back to the previous version in one step. Not gated: that version was deployed before."""
    project = deployment.project
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        _require_live(d)
        target = previous_version(d)
        if target is None:
            raise Conflict("There is no previous version to roll back to.", field="deployment")
        _lock_servable(target, "deployment")
        current = d.model_version
        d.model_version = target
        d.save(update_fields=["model_version", "updated_at"])
        DeploymentChange.objects.create(
            project=project,
            deployment=d,
            action="rollback",
            from_version=current,
            to_version=target,
            reason=(reason or "").strip(),
            actor=actor,
        )
        deployment_rolled_back_event(actor=actor, deployment=d, current=current, target=target, reason=reason)
        _notify(
            deployment=d,
            event="deployment.rolled_back",
            version=target,
            extra={"from_version": {"id": current.pk, "version": current.version}, "reason": reason},
        )
    return d


def deployment_set_status(*, deployment: Deployment, actor: Any, status: str, reason: str = "") -> Deployment:
    if status not in (DeploymentStatus.ACTIVE, DeploymentStatus.PAUSED):
        raise InvalidInput("Choose active or paused (retiring is its own, owner-only action).", field="status")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        _require_live(d)
        if d.status == status:
            return d
        d.status = status
        d.save(update_fields=["status", "updated_at"])
        paused = status == DeploymentStatus.PAUSED
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action="pause" if paused else "resume",
            from_version=d.model_version,
            to_version=d.model_version,
            reason=(reason or "").strip(),
            actor=actor,
        )
        deployment_status_event(actor=actor, deployment=d, paused=paused, reason=reason)
    return d


def deployment_set_shadow(*, deployment: Deployment, actor: Any, model_version: ModelVersion | None) -> Deployment:
    """A challenger that receives a copy of live traffic; its predictions are logged, not returned."""
    if model_version is not None and model_version.project_id != deployment.project_id:
        raise InvalidInput("No such model version in this project.", field="shadow_model_version")
    if model_version is not None and model_version.pk == deployment.model_version_id:
        raise InvalidInput("The shadow must differ from the active version.", field="shadow_model_version")
    if model_version is not None:
        _require_ready(model_version, "shadow_model_version")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        _require_live(d)
        if model_version is not None:
            _lock_servable(model_version, "shadow_model_version")
        d.shadow_model_version = model_version
        d.save(update_fields=["shadow_model_version", "updated_at"])
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action="shadow",
            from_version=d.model_version,
            to_version=model_version,
            actor=actor,
        )
        deployment_shadow_set_event(actor=actor, deployment=d, shadow=model_version)
    return d


def deployment_set_threshold(*, deployment: Deployment, actor: Any, threshold: Any, reason: str = "") -> Deployment:
    """Set (or, with None, clear) the decision threshold of a deployed binary classifier.

    The positive class (the version's `positive_class`) is predicted when its probability is at
    least `threshold`; None goes back to the most probable class. It applies to the next
    prediction: the save bumps the serving generation (deployments.apps), so every process drops
    its cached deployment. Recorded in the history with old and new value, and audited.
    """
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
            raise InvalidInput("The threshold is a probability strictly between 0 and 1.", field="threshold")
        threshold = float(threshold)
    with transaction.atomic():
        d = Deployment.objects.select_for_update().select_related("model_version").get(pk=deployment.pk)
        _require_live(d)
        version = d.model_version
        if not is_binary(version):
            raise InvalidInput(
                "A decision threshold applies to a binary classifier with probabilities; "
                f"v{version.version} is a {version.task_type} model with {len(version.classes or [])} classes.",
                field="threshold",
            )
        before = d.active_threshold
        if before == threshold:
            return d
        d.decision_threshold = threshold
        d.decision_threshold_version = version if threshold is not None else None
        d.save(update_fields=["decision_threshold", "decision_threshold_version", "updated_at"])
        reason = (reason or "").strip()
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action="threshold",
            from_version=version,
            to_version=version,
            reason=reason,
            details={"from": before, "to": threshold, "positive_class": version.positive_class},
            actor=actor,
        )
        deployment_threshold_set_event(actor=actor, deployment=d, before=before, after=threshold, reason=reason)
    return d


def deployment_retire(*, deployment: Deployment, actor: Any, reason: str) -> Deployment:
    """Shut a deployment down for good (owner only; the caller checks RETIRE_DEPLOYMENT).

    Unlike pause (503, resumable), a retired deployment answers predict with 410 Gone and no
    write changes it again. Its prediction log, review items, monitoring snapshots, alerts,
    history and audit stay readable. Waiting review items are closed without a decision;
    firing alerts are resolved; the monitoring beat skips it (it only schedules active ones),
    and so does auto-retrain. Its API keys stay (a caller gets 410, not 401).
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why this deployment is retired (it is recorded and audited).", field="reason")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().select_related("model_version", "project").get(pk=deployment.pk)
        _require_live(d)
        d.status = DeploymentStatus.RETIRED
        d.retired_at = timezone.now()
        d.auto_retrain = False
        d.save(update_fields=["status", "retired_at", "auto_retrain", "updated_at"])
        closed = review_items_close(deployment=d, actor=actor, reason=reason)
        Alert.objects.filter(deployment=d).resolve()  # nothing will refresh them again
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action="retire",
            from_version=d.model_version,
            reason=reason,
            details={"reviews_closed": closed},
            actor=actor,
        )
        deployment_retired_event(actor=actor, deployment=d, reason=reason, reviews_closed=closed)
        _notify(deployment=d, event="deployment.retired", version=d.model_version, extra={"reason": reason})
    return d


def deployment_apply_costs(
    *, deployment: Deployment, actor: Any, threshold: Any, band: Any, reason: str = ""
) -> Deployment:
    """Apply a decision threshold and review band chosen by cost (the one-click of the cost
    advice) through the existing services: the threshold (history row, audit, with `reason`) and
    the review policy's class thresholds (audited). `band` [low, high] sends positive-class
    probabilities in it to review; None: no band (the class thresholds then route nothing by
    confidence, whatever the deployment-wide review threshold says)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        raise InvalidInput("The threshold is a probability strictly between 0 and 1.", field="threshold")
    low = high = float(threshold)
    if band is not None:
        ok = isinstance(band, list | tuple) and len(band) == 2
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in band)
        if not ok:
            raise InvalidInput("The band is [low, high], two probabilities, or null.", field="band")
        low, high = float(band[0]), float(band[1])
        if not 0 <= low <= threshold <= high <= 1:
            raise InvalidInput("The band must hold the threshold: 0 ≤ low ≤ threshold ≤ high ≤ 1.", field="band")
    version = deployment.model_version
    if not is_binary(version):
        raise InvalidInput("Decisions by cost apply to a binary classifier.", field="threshold")
    classes = list(version.classes)
    positive = version.positive_class if version.positive_class is not None else classes[-1]
    negative = next(c for c in classes if str(c) != str(positive))
    policy = dict(deployment.review_policy or {})
    thresholds = {**(policy.get("class_thresholds") or {}), str(positive): high, str(negative): round(1 - low, 6)}
    reason = (reason or "").strip() or "Cost-optimal threshold and review band"
    with transaction.atomic():
        d = deployment_set_threshold(deployment=deployment, actor=actor, threshold=float(threshold), reason=reason)
        d = review_policy_update(deployment=d, actor=actor, review_policy={**policy, "class_thresholds": thresholds})
    return d
