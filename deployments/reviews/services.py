"""The review queue's writes: routing predictions to review, decisions, claims, the review
policy, the SLA alert.

Concurrency: every state change on a review item is one conditional UPDATE
(`filter(pk=..., status__in=..., <not claimed by someone else>).update(...)`) whose row count
says who won. Under PostgreSQL's READ COMMITTED, a second UPDATE on the same row waits for the
first to commit and then re-checks its WHERE clause, so two reviewers can never both decide the
same item: the loser gets 0 rows and a 409.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from deployments.events import review_decided_event, review_policy_updated_event
from deployments.models import (
    Alert,
    AlertState,
    Deployment,
    ModelVersion,
    Prediction,
    PredictionStatus,
    ReviewItem,
    ReviewMode,
    ReviewStatus,
)
from deployments.reviews.routing import (
    Route,
    label_key,
    novelty_routes,
    novelty_scorer,
    policy_of,
    policy_validate,
    rng,
)
from deployments.reviews.selectors import DECIDED, claim_free, review_public
from jobs.webhooks import project_event, webhook_enqueue
from mlplatform.errors import Conflict, InvalidInput, PermissionDenied
from projects.access import can, scope
from projects.destinations import destination_audit, destination_check
from projects.roles import Action

ACTIONS = ("approve", "override", "escalate")
CLAIM_MINUTES = 10
MAX_COMMENT = 5000
SLA_KEY = "review_sla"


# --- routing predictions ----------------------------------------------------------------------


def review_plan(
    *,
    deployment: Deployment,
    labels: list,
    confidences: list[float | None],
    model_version_id: int | None = None,
    columns: dict[str, Any] | None = None,
) -> list[Route | None]:
    """One entry per prediction: a Route when it must be reviewed, else None.

    `columns` (the validated request, feature -> values) and `model_version_id` feed the
    out_of_distribution rule; without them it is skipped.
    """
    if len(labels) != len(confidences):
        raise ValueError("labels and confidences must have the same length")
    policy = policy_of(deployment)
    if not policy.active:
        return [None] * len(labels)
    novel = novelty_routes(policy=policy, model_version_id=model_version_id, columns=columns)
    plan: list[Route | None] = []
    for i, (label, confidence) in enumerate(zip(labels, confidences, strict=True)):
        why = novel[i] if novel is not None else None
        key = label_key(label)
        if key in policy.always_review:
            plan.append(Route("class_rule", novelty=why))
            continue
        threshold = policy.class_thresholds.get(key, policy.threshold)
        if threshold is not None and confidence is not None and confidence < threshold:
            plan.append(Route("low_confidence", novelty=why))
            continue
        if why is not None:
            plan.append(Route("out_of_distribution", novelty=why))
            continue
        if policy.sample_rate > 0 and rng.random() < policy.sample_rate:
            plan.append(Route("sample", sample_weight=1.0 / policy.sample_rate))
            continue
        plan.append(None)
    return plan


def review_items_create(
    *, deployment: Deployment, predictions: list[Prediction], plan: list[Route | None]
) -> list[ReviewItem]:
    """Create one review item per routed prediction. Call inside the predictions' transaction.

    The predictions must already be saved (the item points at them). One INSERT for the batch.
    """
    if len(predictions) != len(plan):
        raise ValueError("predictions and plan must have the same length")
    items = [
        ReviewItem(
            project_id=deployment.project_id,
            deployment=deployment,
            prediction=prediction,
            reason=route.reason,
            mode=deployment.review_mode,
            confidence=prediction.confidence,
            model_label=prediction.prediction,
            sample_weight=route.sample_weight,
            novelty=route.novelty,
        )
        for prediction, route in zip(predictions, plan, strict=True)
        if route is not None
    ]
    if not items:
        return []
    return ReviewItem.objects.bulk_create(items)


# --- decisions ---------------------------------------------------------------------------------


def label_validate(*, model_version: ModelVersion, label: Any) -> Any:
    """The canonical label for a human's answer, or InvalidInput naming `label`."""
    if label is None or (isinstance(label, str) and not label.strip()):
        raise InvalidInput("Give the correct label.", field="label")
    if model_version.task_type == "regression":
        if isinstance(label, bool):
            raise InvalidInput("Must be a number.", field="label")
        try:
            value = float(label)
        except (TypeError, ValueError):
            raise InvalidInput(f"Must be a number; got {label!r}.", field="label") from None
        if not math.isfinite(value):
            raise InvalidInput("Must be a finite number.", field="label")
        return value
    classes = list(model_version.classes or [])
    for c in classes:
        if c == label or label_key(c) == label_key(label):
            return c
    shown = ", ".join(label_key(c) for c in classes[:20])
    raise InvalidInput(f"Unknown class {label!r}; choose one of: {shown}.", field="label")


def _why_not(item_pk: int, actor: Any, now) -> Conflict:
    current = ReviewItem.objects.select_related("decided_by", "claimed_by").get(pk=item_pk)
    if current.status in DECIDED:
        who = current.decided_by.get_username() if current.decided_by else "someone"
        return Conflict(f"Already decided ({current.status}) by {who}.", field="status")
    if (
        current.claimed_by_id
        and current.claimed_by_id != actor.pk
        and current.claimed_until
        and current.claimed_until >= now
    ):
        return Conflict(
            f"{current.claimed_by.get_username()} is reviewing this item until "
            f"{timezone.localtime(current.claimed_until):%H:%M:%S}.",
            field="claimed_by",
        )
    return Conflict(f"This item is {current.status}; it cannot take that action.", field="status")


def _decision(item: ReviewItem, action: str, label: Any) -> tuple[Any, str]:
    """The final label and status an action gives (a "correction" equal to the model's answer is
    an approval: the override rate counts disagreements only)."""
    model_label = item.model_label
    if action == "override":
        final_label = label_validate(model_version=item.prediction.model_version, label=label)
        same = label_key(final_label) == label_key(model_label)
        return final_label, ReviewStatus.APPROVED if same else ReviewStatus.OVERRIDDEN
    if action == "approve":
        return model_label, ReviewStatus.APPROVED
    return None, ReviewStatus.ESCALATED


def _allowed_from(item: ReviewItem, actor: Any, action: str) -> list[str]:
    """The statuses this actor may decide from: escalated items belong to owners."""
    if action == "escalate":
        return [ReviewStatus.PENDING]
    if can(actor, item.project_id, Action.DECIDE):
        return [ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    if item.status == ReviewStatus.ESCALATED:
        raise PermissionDenied("This item was escalated: only an owner may decide it.", field="status")
    return [ReviewStatus.PENDING]


def _announce(item: ReviewItem, actor: Any, status: str, comment: str) -> None:
    if status == ReviewStatus.ESCALATED:
        # Owners hear about escalations on the project's own webhook (chat, ticketing).
        project_event(
            project=item.project,
            event="review.escalated",
            payload={**review_public(item), "escalated_by": actor.get_username(), "comment": comment},
        )
    elif item.mode == ReviewMode.HOLD:
        deployment = item.deployment
        webhook_enqueue(
            project=item.project,
            url=deployment.review_webhook_url,
            secret=item.project.webhook_secret,
            event="review.decided",
            payload=review_public(item),
        )


def review_decide(*, item: ReviewItem, actor: Any, action: str, label: Any = None, comment: str = "") -> ReviewItem:
    """Approve, override (with `label`) or escalate one review item.

    The caller has checked Action.REVIEW on the item's project. Escalated items can then only
    be decided by someone with Action.DECIDE (owners). Raises Conflict (409) when the item was
    already decided, is claimed by another reviewer, or another request won the race.
    """
    if action not in ACTIONS:
        raise InvalidInput(f"Choose one of {', '.join(ACTIONS)}.", field="action")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"At most {MAX_COMMENT} characters.", field="comment")
    final_label, status = _decision(item, action, label)
    allowed = _allowed_from(item, actor, action)
    now = timezone.now()
    with transaction.atomic():
        changes: dict[str, Any] = {"status": status, "claimed_by": None, "claimed_until": None}
        if comment:
            # An owner deciding an escalated item keeps the escalation's reason beside theirs.
            earlier = item.comment if item.status == ReviewStatus.ESCALATED and item.comment else ""
            changes["comment"] = f"{earlier}\n{comment}" if earlier else comment
        if status != ReviewStatus.ESCALATED:
            changes.update(final_label=final_label, decided_by=actor, decided_at=now)
        won = ReviewItem.objects.filter(pk=item.pk, status__in=allowed).filter(claim_free(actor, now)).update(**changes)
        if not won:
            raise _why_not(item.pk, actor, now)
        item.refresh_from_db()
        if status != ReviewStatus.ESCALATED:
            Prediction.objects.filter(pk=item.prediction_id).update(
                final_prediction=final_label, status=PredictionStatus.REVIEWED
            )
            # The human's label is ground truth unless the real outcome already arrived as
            # feedback: an observed outcome beats an opinion.
            Prediction.objects.filter(pk=item.prediction_id).exclude(actual_source="feedback").update(
                actual=final_label, actual_source="review", actual_at=now
            )
        review_decided_event(
            actor=actor,
            item=item,
            status=status,
            model_said=item.model_label,
            human_said=final_label,
            waited=(now - item.created_at).total_seconds(),
            comment=comment,
        )
        _announce(item, actor, status, comment)
    return item


def review_claim(
    *, item: ReviewItem, actor: Any, minutes: int = CLAIM_MINUTES, release_others: bool = False
) -> ReviewItem:
    """Lock an item for `actor` for a few minutes; 409 when another reviewer holds it.

    `release_others`: the reviewer page works one item at a time, so opening an item frees the
    ones this reviewer skipped past (they go back to the others' queues at once).
    """
    if not 1 <= minutes <= 120:
        raise InvalidInput("Between 1 and 120 minutes.", field="minutes")
    now = timezone.now()
    if release_others:
        ReviewItem.objects.filter(project_id=item.project_id, claimed_by=actor).exclude(pk=item.pk).update(
            claimed_by=None, claimed_until=None
        )
    allowed = [ReviewStatus.PENDING]
    if can(actor, item.project_id, Action.DECIDE):
        allowed.append(ReviewStatus.ESCALATED)
    won = (
        ReviewItem.objects.filter(pk=item.pk, status__in=allowed)
        .filter(claim_free(actor, now))
        .update(claimed_by=actor, claimed_until=now + timedelta(minutes=minutes))
    )
    if not won:
        raise _why_not(item.pk, actor, now)
    item.refresh_from_db()
    return item


def review_release(*, item: ReviewItem, actor: Any) -> ReviewItem:
    ReviewItem.objects.filter(pk=item.pk, claimed_by=actor).update(claimed_by=None, claimed_until=None)
    item.refresh_from_db()
    return item


def review_bulk_approve(*, user: Any, ids: list[int], comment: str = "") -> dict[str, Any]:
    """Approve many items (a screened selection). All ids must be visible with Action.REVIEW.

    Items decided meanwhile or claimed by someone else are skipped and reported, not fatal:
    the rest are approved, each in its own transaction with its own audit event.
    """
    if not isinstance(ids, list) or not ids or len(ids) > 500:
        raise InvalidInput("Give between 1 and 500 review ids.", field="ids")
    try:
        wanted = sorted({int(i) for i in ids})
    except (TypeError, ValueError):
        raise InvalidInput("Ids must be integers.", field="ids") from None
    items = list(
        scope(ReviewItem.objects.all(), user)
        .select_related("prediction__model_version", "deployment", "project")
        .filter(pk__in=wanted)
        .distinct()
    )
    missing = sorted(set(wanted) - {i.pk for i in items})
    if missing:
        raise InvalidInput(f"No such review item: {missing[0]}.", field="ids")
    for project_id in {i.project_id for i in items}:
        if not can(user, project_id, Action.REVIEW):
            raise PermissionDenied("Your role does not allow reviewing.", field="ids")
    approved, skipped = [], []
    for item in items:
        try:
            review_decide(item=item, actor=user, action="approve", comment=comment)
            approved.append(item.pk)
        except (Conflict, PermissionDenied) as exc:
            skipped.append({"id": item.pk, "detail": exc.message})
    return {"approved": approved, "skipped": skipped}


_UNSET: Any = object()


def _url_differs(value: Any, current: str) -> bool:
    """An unchanged URL sent back (a form posting every field) is not a change of destination."""
    return not (isinstance(value, str) or value is None) or (value or "").strip() != (current or "")


def review_policy_update(
    *,
    deployment: Deployment,
    actor: Any,
    review_threshold: Any = _UNSET,
    review_mode: Any = _UNSET,
    review_policy: Any = _UNSET,
    review_sla_minutes: Any = _UNSET,
    review_webhook_url: Any = _UNSET,
) -> Deployment:
    """Change a deployment's review policy (the caller checked Action.MANAGE_DEPLOYMENTS).

    Validates everything before writing anything; audits what changed. The decision webhook's URL
    changes only through `projects.destinations` (roles that manage connections, netguard at save,
    audited as `destination.changed` with old and new value); deliveries are signed with the
    project's webhook secret (shown once to owners, rotatable: `projects.webhook_settings`).
    """
    changes: dict[str, Any] = {}
    if review_threshold is not _UNSET:
        if review_threshold in (None, ""):
            changes["review_threshold"] = None
        else:
            try:
                value = float(review_threshold)
            except (TypeError, ValueError):
                raise InvalidInput("A number between 0 and 1, or null.", field="review_threshold") from None
            if not 0 <= value <= 1 or isinstance(review_threshold, bool):
                raise InvalidInput("A number between 0 and 1, or null.", field="review_threshold")
            changes["review_threshold"] = value
    if review_mode is not _UNSET:
        if review_mode not in ReviewMode.values:
            raise InvalidInput(f"Choose one of {', '.join(ReviewMode.values)}.", field="review_mode")
        changes["review_mode"] = review_mode
    if review_policy is not _UNSET:
        changes["review_policy"] = policy_validate(review_policy)
        if changes["review_policy"].get("novelty_rate") and novelty_scorer(deployment.model_version_id) is None:
            raise InvalidInput(
                "novelty_rate: the deployed model version has no novelty profile (too few training rows, or "
                "registered before profiles existed); register the model again to use the rule.",
                field="review_policy",
            )
    if review_sla_minutes is not _UNSET:
        try:
            sla = int(review_sla_minutes)
        except (TypeError, ValueError):
            raise InvalidInput("Whole minutes, at least 1.", field="review_sla_minutes") from None
        if sla < 1 or sla > 60 * 24 * 90 or isinstance(review_sla_minutes, bool):
            raise InvalidInput("Whole minutes, between 1 and 129600 (90 days).", field="review_sla_minutes")
        changes["review_sla_minutes"] = sla
    if review_webhook_url is not _UNSET and _url_differs(review_webhook_url, deployment.review_webhook_url):
        # Where decisions go is an owner's decision: 403 for other roles, netguard's policy at save.
        changes["review_webhook_url"] = destination_check(
            actor=actor, project=deployment.project, field="review_webhook_url", value=review_webhook_url
        )
    before = {k: getattr(deployment, k) for k in changes}
    changed = {k: {"from": before[k], "to": v} for k, v in changes.items() if before[k] != v}
    if not changed:
        return deployment
    with transaction.atomic():
        for k in changed:
            setattr(deployment, k, changes[k])
        deployment.save(update_fields=[*changed, "updated_at"])
        if "review_webhook_url" in changed:
            url = changed.pop("review_webhook_url")
            destination_audit(
                actor=actor,
                project=deployment.project,
                obj=deployment,
                field="review_webhook_url",
                old=url["from"],
                new=url["to"],
            )
        if changed:
            review_policy_updated_event(actor=actor, deployment=deployment, changed=changed)
    return deployment


# --- SLA alert --------------------------------------------------------------------------------


def review_sla_check(*, deployment: Deployment) -> None:
    """Fire (or refresh) the "review_sla" alert when the oldest waiting item passes the SLA;
    resolve it when it no longer does. Safe to call concurrently: one firing row per key."""
    oldest = ReviewItem.objects.filter(
        deployment=deployment, status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    ).aggregate(m=Min("created_at"))["m"]
    now = timezone.now()
    age_min = (now - oldest).total_seconds() / 60 if oldest else 0.0
    sla = float(deployment.review_sla_minutes)
    firing = Alert.objects.filter(deployment=deployment, key=SLA_KEY).firing()
    if oldest is None or age_min <= sla:
        firing.resolve()
        return
    message = f"The oldest review item has waited {age_min:.0f} min; the SLA is {sla:.0f} min."
    severity = "critical" if age_min > 2 * sla else "warning"
    if firing.update(value=age_min, message=message, severity=severity, last_seen_at=now):
        return
    try:
        with transaction.atomic():
            Alert.objects.create(
                project_id=deployment.project_id,
                deployment=deployment,
                key=SLA_KEY,
                kind="review_sla",
                severity=severity,
                message=message,
                value=age_min,
                threshold=sla,
            )
    except IntegrityError:
        # Another checker created the firing row between our UPDATE and INSERT: refresh it.
        firing.update(value=age_min, message=message, severity=severity, last_seen_at=now)


def review_sla_check_all() -> int:
    """Check the SLA of every deployment with waiting items or a firing SLA alert; returns how
    many were checked. Cheap enough for the 60-second monitoring beat."""
    ids = set(
        ReviewItem.objects.filter(status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED])
        .values_list("deployment_id", flat=True)
        .distinct()
    ) | set(Alert.objects.filter(key=SLA_KEY, state=AlertState.FIRING).values_list("deployment_id", flat=True))
    for deployment in Deployment.objects.filter(pk__in=ids):
        review_sla_check(deployment=deployment)
    return len(ids)


# --- retirement -------------------------------------------------------------------------------


def review_items_close(*, deployment: Deployment, actor: Any, reason: str) -> int:
    """Close every waiting item (pending or escalated) of a deployment being retired; returns how many.

    Closed is not a decision: no label is recorded, the prediction keeps its model label and
    status, and queue health (override rates, threshold advice) counts only approved and
    overridden items. The SLA alert, with nothing left waiting, is resolved. Call inside the
    retirement's transaction.
    """
    now = timezone.now()
    closed = ReviewItem.objects.filter(
        deployment=deployment, status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    ).update(
        status=ReviewStatus.CLOSED,
        decided_at=now,
        decided_by=actor,
        claimed_by=None,
        claimed_until=None,
        comment=f"Closed without a decision: the deployment was retired. {reason}".strip()[:MAX_COMMENT],
    )
    review_sla_check(deployment=deployment)
    return closed
