"""The review queue: decisions (services) and queue reads (selectors). Issue 6.

Concurrency: every state change on a review item is one conditional UPDATE
(`filter(pk=..., status__in=..., <not claimed by someone else>).update(...)`) whose row count
says who won. Under PostgreSQL's READ COMMITTED, a second UPDATE on the same row waits for the
first to commit and then re-checks its WHERE clause, so two reviewers can never both decide the
same item: the loser gets 0 rows and a 409.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

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
from deployments.review_routing import label_key, policy_of
from mlplatform.errors import Conflict, InvalidInput, PermissionDenied
from projects.access import can, scope
from projects.roles import Action
from projects.services import audit_record
from projects.webhooks import project_event, webhook_enqueue

ACTIONS = ("approve", "override", "escalate")
CLAIM_MINUTES = 10
MAX_COMMENT = 5000
DECIDED = (ReviewStatus.APPROVED, ReviewStatus.OVERRIDDEN)


# --- services ---------------------------------------------------------------------------------


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


def _claim_free(actor: Any, now) -> Q:
    return Q(claimed_by__isnull=True) | Q(claimed_by=actor) | Q(claimed_until__lt=now)


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
    model_version = item.prediction.model_version
    model_label = item.model_label
    if action == "override":
        final_label = label_validate(model_version=model_version, label=label)
        # A "correction" to the model's own answer is an approval: the override rate counts
        # disagreements only.
        status = ReviewStatus.APPROVED if label_key(final_label) == label_key(model_label) else ReviewStatus.OVERRIDDEN
    elif action == "approve":
        final_label, status = model_label, ReviewStatus.APPROVED
    else:
        final_label, status = None, ReviewStatus.ESCALATED

    owner = can(actor, item.project_id, Action.DECIDE)
    if action == "escalate":
        allowed = [ReviewStatus.PENDING]
    elif owner:
        allowed = [ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    else:
        allowed = [ReviewStatus.PENDING]
        if item.status == ReviewStatus.ESCALATED:
            raise PermissionDenied("This item was escalated: only an owner may decide it.", field="status")

    now = timezone.now()
    with transaction.atomic():
        changes: dict[str, Any] = {"status": status, "claimed_by": None, "claimed_until": None}
        if comment:
            # An owner deciding an escalated item keeps the escalation's reason beside theirs.
            earlier = item.comment if item.status == ReviewStatus.ESCALATED and item.comment else ""
            changes["comment"] = f"{earlier}\n{comment}" if earlier else comment
        if status != ReviewStatus.ESCALATED:
            changes.update(final_label=final_label, decided_by=actor, decided_at=now)
        won = (
            ReviewItem.objects.filter(pk=item.pk, status__in=allowed).filter(_claim_free(actor, now)).update(**changes)
        )
        if not won:
            raise _why_not(item.pk, actor, now)
        item.refresh_from_db()
        waited = (now - item.created_at).total_seconds()
        if status != ReviewStatus.ESCALATED:
            Prediction.objects.filter(pk=item.prediction_id).update(
                final_prediction=final_label, status=PredictionStatus.REVIEWED
            )
            # The human's label is ground truth unless the real outcome already arrived as
            # feedback: an observed outcome beats an opinion.
            Prediction.objects.filter(pk=item.prediction_id).exclude(actual_source="feedback").update(
                actual=final_label, actual_source="review", actual_at=now
            )
        audit_record(
            actor=actor,
            action=f"review.{status}",
            project=item.project,
            obj=item,
            data={
                "prediction": str(item.prediction_id),
                "deployment": item.deployment_id,
                "reason": item.reason,
                "confidence": item.confidence,
                "model_said": model_label,
                "human_said": final_label,
                "waited_seconds": round(waited, 3),
                "comment": comment,
            },
        )
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
                secret=deployment.webhook_secret,
                event="review.decided",
                payload=review_public(item),
            )
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
        .filter(_claim_free(actor, now))
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


def review_public(item: ReviewItem) -> dict[str, Any]:
    """What a calling application learns about its held prediction (poll and webhook body)."""
    return {
        "event": "review.decided" if item.status in DECIDED else "review.updated",
        "review_id": item.pk,
        "prediction_id": str(item.prediction_id),
        "deployment": item.deployment_id,
        "status": item.status,
        "final": item.status in DECIDED,
        "model_label": item.model_label,
        "final_label": item.final_label,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }


_UNSET: Any = object()


def _webhook_url_validate(url: str) -> str:
    from urllib.parse import urlsplit

    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if len(url) > 200 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("An http(s) URL of at most 200 characters.", field="review_webhook_url")
    if parts.username or parts.password:
        raise InvalidInput("Credentials in the URL are not allowed.", field="review_webhook_url")
    # Private and loopback addresses are refused at delivery time (netguard), where DNS is
    # resolved and pinned: checking here too would be defeated by DNS rebinding anyway.
    return url


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

    Validates everything before writing anything; audits what changed. A webhook URL without a
    secret gets a generated one (the receiver needs it to check signatures).
    """
    from deployments.review_routing import policy_validate

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
    if review_sla_minutes is not _UNSET:
        try:
            sla = int(review_sla_minutes)
        except (TypeError, ValueError):
            raise InvalidInput("Whole minutes, at least 1.", field="review_sla_minutes") from None
        if sla < 1 or sla > 60 * 24 * 90 or isinstance(review_sla_minutes, bool):
            raise InvalidInput("Whole minutes, between 1 and 129600 (90 days).", field="review_sla_minutes")
        changes["review_sla_minutes"] = sla
    if review_webhook_url is not _UNSET:
        changes["review_webhook_url"] = _webhook_url_validate(review_webhook_url)
    before = {k: getattr(deployment, k) for k in changes}
    changed = {k: {"from": before[k], "to": v} for k, v in changes.items() if before[k] != v}
    if not changed:
        return deployment
    with transaction.atomic():
        for k in changed:
            setattr(deployment, k, changes[k])
        fields = [*changed, "updated_at"]
        if deployment.review_webhook_url and not deployment.webhook_secret:
            import secrets

            deployment.webhook_secret = secrets.token_urlsafe(32)
            fields.append("webhook_secret")
        deployment.save(update_fields=fields)
        audit_record(
            actor=actor,
            action="deployment.review_policy_updated",
            project=deployment.project,
            obj=deployment,
            data={"changed": changed},
        )
    return deployment


def review_policy_of(deployment: Deployment) -> dict[str, Any]:
    return {
        "review_threshold": deployment.review_threshold,
        "review_mode": deployment.review_mode,
        "review_policy": deployment.review_policy or {},
        "review_sla_minutes": deployment.review_sla_minutes,
        "review_webhook_url": deployment.review_webhook_url,
        "webhook_secret_set": bool(deployment.webhook_secret),
    }


# --- SLA alert --------------------------------------------------------------------------------

SLA_KEY = "review_sla"


def review_sla_check(*, deployment: Deployment) -> None:
    """Fire (or refresh) the "review_sla" alert when the oldest waiting item passes the SLA;
    resolve it when it no longer does. Safe to call concurrently: one firing row per key."""
    oldest = ReviewItem.objects.filter(
        deployment=deployment, status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED]
    ).aggregate(m=Min("created_at"))["m"]
    now = timezone.now()
    age_min = (now - oldest).total_seconds() / 60 if oldest else 0.0
    sla = float(deployment.review_sla_minutes)
    firing = Alert.objects.filter(deployment=deployment, key=SLA_KEY, state=AlertState.FIRING)
    if oldest is None or age_min <= sla:
        firing.update(state=AlertState.RESOLVED, resolved_at=now, last_seen_at=now)
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


# --- selectors --------------------------------------------------------------------------------


def review_list(
    *,
    user: Any,
    project: Any = None,
    deployment: Any = None,
    status: str | None = None,
    reason: str | None = None,
    order: str = "oldest",
    hide_claimed: bool = False,
) -> QuerySet[ReviewItem]:
    qs = scope(ReviewItem.objects.all(), user).select_related("prediction", "deployment", "decided_by", "claimed_by")
    if project is not None:
        qs = qs.filter(project=project)
    if deployment is not None:
        qs = qs.filter(deployment=deployment)
    if status:
        qs = qs.filter(status=status)
    if reason:
        qs = qs.filter(reason=reason)
    if hide_claimed:
        qs = qs.filter(_claim_free(user, timezone.now()))
    if order == "least_confident":
        return qs.order_by("confidence", "created_at", "pk")
    if order == "newest":
        return qs.order_by("-created_at", "-pk")
    return qs.order_by("created_at", "pk")


def _wilson(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def qc_estimate(rows: list[tuple[bool, float]]) -> dict[str, Any]:
    """Accuracy of unreviewed predictions from the decided QC sample.

    `rows` are (model was right, sample_weight). The weighted mean is a Horvitz-Thompson
    estimate (each sampled item stands for 1/rate predictions); the interval is Wilson's on
    Kish's effective sample size, which shrinks when the sampling rate changed over time.
    """
    n = len(rows)
    if n == 0:
        return {"n": 0, "accuracy": None, "ci_low": None, "ci_high": None, "represents": 0}
    w = sum(weight for _, weight in rows)
    w2 = sum(weight * weight for _, weight in rows)
    acc = sum(weight for right, weight in rows if right) / w
    n_eff = w * w / w2
    low, high = _wilson(acc, n_eff)
    return {
        "n": n,
        "accuracy": round(acc, 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "effective_n": round(n_eff, 1),
        "represents": round(w),
    }


def advice_thresholds(current: float | None) -> list[float]:
    return sorted({0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, *([round(current, 2)] if current else [])})


def threshold_advice(
    *,
    decided: list[tuple[float, bool, float]],
    days: float,
    current: float | None,
    confidences: list[float] | None = None,
    routed_counts: dict[float, int] | None = None,
    total: int | None = None,
) -> list[dict[str, Any]]:
    """What-if table for other global thresholds.

    `decided`: (confidence, overridden, weight) of decided items; low-confidence and class-rule
    items have weight 1 (every such prediction is reviewed), QC sample items 1/rate. So for a
    candidate threshold t, the weighted override rate of decided items at or above t estimates
    the error rate that would reach callers unreviewed, and below t the share of reviews that
    change the answer. The review load comes from recent predictions: either their
    `confidences`, or `routed_counts` {threshold: predictions under it} and `total` counted in SQL.
    """
    candidates = advice_thresholds(current)
    if routed_counts is None:
        confidences = confidences or []
        routed_counts = {t: sum(1 for c in confidences if c < t) for t in candidates}
        total = len(confidences)
    total = total or 0
    if not total and not decided:
        return []
    # Above the current threshold only the random QC sample was reviewed. Without it, the
    # estimate for a lower threshold describes the band [t, current) alone: say so.
    sampled_above = any(current is None or c >= current for c, _, _ in decided)
    rows = []
    for t in candidates:
        if current is not None and t < current:
            basis = "band and QC sample" if sampled_above else "band only (no QC sample above the threshold)"
        else:
            basis = "QC sample" if sampled_above else None
        below = [(o, w) for c, o, w in decided if c < t]
        above = [(o, w) for c, o, w in decided if c >= t]
        routed = routed_counts.get(t, 0)
        w_above = sum(w for _, w in above)
        rows.append(
            {
                "threshold": t,
                "current": current is not None and abs(t - current) < 1e-9,
                "review_share": round(routed / total, 4) if total else None,
                "reviews_per_day": round(routed / days, 1) if days > 0 else None,
                "decided_below": len(below),
                "override_rate_below": round(sum(1 for o, _ in below if o) / len(below), 4) if below else None,
                "decided_above": len(above),
                "unreviewed_error_estimate": round(sum(w for o, w in above if o) / w_above, 4) if w_above else None,
                "estimate_basis": basis if w_above else None,
            }
        )
    return rows


def review_health(*, deployment: Deployment, window_days: int = 30) -> dict[str, Any]:
    """Queue health for the deployment page, the API and monitoring (JSON-safe)."""
    now = timezone.now()
    items = ReviewItem.objects.filter(deployment=deployment)
    waiting = items.filter(status__in=[ReviewStatus.PENDING, ReviewStatus.ESCALATED])
    counts = dict(waiting.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    oldest = waiting.aggregate(m=Min("created_at"))["m"]
    since = now - timedelta(days=window_days)
    decided = list(
        items.filter(status__in=DECIDED, decided_at__gte=since)
        .values_list(
            "created_at",
            "decided_at",
            "status",
            "model_label",
            "decided_by__username",
            "reason",
            "confidence",
            "sample_weight",
        )
        .order_by("-decided_at")[:20000]
    )
    waits = [(d - c).total_seconds() for c, d, *_ in decided]
    overridden = [s == ReviewStatus.OVERRIDDEN for _, _, s, *_ in decided]
    per_class: dict[str, list[bool]] = defaultdict(list)
    reviewers: dict[str, dict[str, Any]] = defaultdict(lambda: {"decided": 0, "overridden": 0, "last_24h": 0})
    for (_c, d, _s, label, who, *_), o in zip(decided, overridden, strict=True):
        per_class[label_key(label)].append(o)
        r = reviewers[who or "(deleted user)"]
        r["decided"] += 1
        r["overridden"] += int(o)
        r["last_24h"] += int(d >= now - timedelta(hours=24))
    for who, r in reviewers.items():
        mine = [w for (c, d, s, lab, u, *_), w in zip(decided, waits, strict=True) if (u or "(deleted user)") == who]
        r["median_wait_seconds"] = round(statistics.median(mine), 1) if mine else None
        r["per_day"] = round(r["decided"] / window_days, 2)
    qc = qc_estimate(
        [(s == ReviewStatus.APPROVED, w) for _c, _d, s, _l, _u, reason, _conf, w in decided if reason == "sample"]
    )
    preds = Prediction.objects.filter(deployment=deployment, created_at__gte=since)
    first = preds.aggregate(m=Min("created_at"))["m"]
    # Under a day of traffic, per-day figures would extrapolate minutes: count it as one day.
    days = max((now - first).total_seconds() / 86400, 1.0) if first else 0
    # One pass in the database, however many predictions: a conditional count per threshold.
    candidates = advice_thresholds(deployment.review_threshold)
    load = preds.exclude(confidence=None).aggregate(
        total=Count("id"), **{f"t{i}": Count("id", filter=Q(confidence__lt=t)) for i, t in enumerate(candidates)}
    )
    advice = threshold_advice(
        decided=[
            (conf, s == ReviewStatus.OVERRIDDEN, w if reason == "sample" else 1.0)
            for _c, _d, s, _l, _u, reason, conf, w in decided
            if conf is not None and reason != "class_rule"
        ],
        routed_counts={t: load[f"t{i}"] for i, t in enumerate(candidates)},
        total=load["total"],
        days=days,
        current=deployment.review_threshold,
    )
    sla_seconds = deployment.review_sla_minutes * 60
    oldest_age = (now - oldest).total_seconds() if oldest else None
    policy = policy_of(deployment)
    return {
        "deployment": deployment.pk,
        "mode": deployment.review_mode,
        "threshold": deployment.review_threshold,
        "policy": {
            "class_thresholds": policy.class_thresholds,
            "always_review": sorted(policy.always_review),
            "sample_rate": policy.sample_rate,
        },
        "pending": counts.get(ReviewStatus.PENDING, 0),
        "escalated": counts.get(ReviewStatus.ESCALATED, 0),
        "oldest_age_seconds": round(oldest_age, 1) if oldest_age is not None else None,
        "sla_minutes": deployment.review_sla_minutes,
        "sla_breached": oldest_age is not None and oldest_age > sla_seconds,
        "window_days": window_days,
        "decided": len(decided),
        "median_time_to_decision_seconds": round(statistics.median(waits), 1) if waits else None,
        "override_rate": round(sum(overridden) / len(overridden), 4) if overridden else None,
        "override_rate_per_class": {
            k: {"decided": len(v), "overridden": sum(v), "rate": round(sum(v) / len(v), 4)}
            for k, v in sorted(per_class.items())
        },
        "reviewers": [{"username": k, **v} for k, v in sorted(reviewers.items(), key=lambda kv: -kv[1]["decided"])],
        "qc_sample": qc,
        "threshold_advice": advice,
    }


# --- one item, for the reviewer ---------------------------------------------------------------


@lru_cache(maxsize=8)
def _model(key: str, sha256: str) -> Any:
    from mlplatform.artifacts import model_load

    return model_load(key, sha256)


def _feature_reference(model_version: ModelVersion, name: str) -> dict[str, Any]:
    stats = model_version.reference_stats if isinstance(model_version.reference_stats, dict) else {}
    features = stats.get("features") if isinstance(stats.get("features"), dict) else stats
    ref = features.get(name) if isinstance(features, dict) else None
    return ref if isinstance(ref, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percentile_from_reference(ref: dict[str, Any], value: float) -> float | None:
    """Where `value` sits in the training distribution, from whichever summary the model's
    reference statistics hold: a (sorted) sample or quantiles, else a histogram."""
    import bisect

    for key in ("sample", "sorted_sample", "quantiles"):
        points = ref.get(key)
        if isinstance(points, dict):
            points = list(points.values())
        if isinstance(points, list):
            nums = sorted(x for x in points if _is_number(x))
            if nums:
                return round(100 * bisect.bisect_left(nums, value) / len(nums), 1)
    edges = ref.get("edges") or ref.get("bins")
    counts = ref.get("counts") or ref.get("shares") or ref.get("ref")
    if isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 and sum(counts) > 0:
        total, below = float(sum(counts)), 0.0
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True):
            if not (_is_number(lo) and _is_number(hi) and _is_number(n)):
                return None
            if value >= hi:
                below += n
            elif value > lo:
                below += n * (value - lo) / (hi - lo)
        return round(100 * below / total, 1)
    return None


def feature_context(model_version: ModelVersion, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each feature's value beside its training distribution: where this value sits."""
    rows = []
    for col in model_version.input_schema or []:
        name = col.get("name")
        value = inputs.get(name)
        ref = _feature_reference(model_version, name)
        row: dict[str, Any] = {"name": name, "type": col.get("type", ""), "value": value, "note": ""}
        if col.get("type") in ("numeric", "boolean") or _is_number(value):
            lo, hi = col.get("min", ref.get("min")), col.get("max", ref.get("max"))
            row.update(min=lo, max=hi, median=col.get("median", ref.get("median")), mean=ref.get("mean"))
            percentile = _percentile_from_reference(ref, value) if _is_number(value) else None
            if percentile is not None:
                row["percentile"] = percentile
            elif _is_number(value) and _is_number(lo) and _is_number(hi) and hi > lo:
                row["position"] = round(100 * (value - lo) / (hi - lo), 1)
            if _is_number(value) and _is_number(lo) and _is_number(hi) and not lo <= value <= hi:
                row["note"] = "outside the training range"
        else:
            cats = col.get("categories") or []
            shares = ref.get("shares") or ref.get("frequencies") or ref.get("categories") or {}
            row["categories"] = cats[:30]
            if isinstance(shares, dict) and value is not None:
                row["share"] = shares.get(str(value))
            if value is not None and cats and str(value) not in {str(c) for c in cats}:
                row["note"] = "not seen in training"
        if value is None:
            row["note"] = "missing"
        rows.append(row)
    return rows


def _baseline_value(col: dict[str, Any], ref: dict[str, Any]) -> Any:
    for key in ("median", "mode"):
        if col.get(key) is not None:
            return col[key]
        if ref.get(key) is not None:
            return ref[key]
    if _is_number(col.get("min")) and _is_number(col.get("max")):
        return (col["min"] + col["max"]) / 2
    cats = col.get("categories") or []
    if cats:
        return cats[0]
    return None


def feature_attribution(model_version: ModelVersion, inputs: dict[str, Any], label: Any) -> dict[str, Any]:
    """Per-instance attribution: replace one feature at a time with its training median (numeric)
    or mode (categorical) and measure how much the predicted class's probability drops.

    One `predict_proba` over n_features + 1 rows. Cheap, model-agnostic and easy to explain to
    a reviewer ("without this income, the model would be 18 points less sure").
    """
    if model_version.task_type != "classification" or not model_version.input_schema:
        return {"features": [], "note": "Attribution is computed for classifiers."}
    try:
        import pandas as pd

        model = _model(model_version.artifact_key, model_version.sha256)
        columns = [c["name"] for c in model_version.input_schema]
        base = {c: inputs.get(c) for c in columns}
        rows = [base]
        for col in model_version.input_schema:
            row = dict(base)
            row[col["name"]] = _baseline_value(col, _feature_reference(model_version, col["name"]))
            rows.append(row)
        frame = pd.DataFrame(rows, columns=columns)
        proba = model.predict_proba(frame)
        classes = [label_key(c) for c in getattr(model, "classes_", model_version.classes)]
        idx = classes.index(label_key(label))
    except Exception as exc:  # noqa: BLE001 - the reviewer still gets the rest of the page
        return {"features": [], "note": f"Attribution unavailable: {type(exc).__name__}."}
    p0 = float(proba[0][idx])
    out = []
    for i, col in enumerate(model_version.input_schema, start=1):
        delta = p0 - float(proba[i][idx])
        out.append(
            {
                "name": col["name"],
                "value": base[col["name"]],
                "baseline": rows[i][col["name"]],
                "contribution": round(delta, 4),
            }
        )
    out.sort(key=lambda r: -abs(r["contribution"]))
    return {"features": out, "probability": round(p0, 4), "note": ""}


def similar_decisions(item: ReviewItem, limit: int = 5) -> list[dict[str, Any]]:
    """Nearest decided items of the same deployment: numeric features scaled by their training
    range, a mismatch of a categorical counts as 1. The last 500 decisions are searched."""
    schema = item.prediction.model_version.input_schema or []
    inputs = item.prediction.inputs or {}
    candidates = (
        ReviewItem.objects.filter(deployment_id=item.deployment_id, status__in=DECIDED)
        .exclude(pk=item.pk)
        .select_related("prediction", "decided_by")
        .order_by("-decided_at")[:500]
    )
    scored = []
    for other in candidates:
        o = other.prediction.inputs or {}
        d = 0.0
        for col in schema:
            a, b = inputs.get(col["name"]), o.get(col["name"])
            if _is_number(a) and _is_number(b):
                lo, hi = col.get("min"), col.get("max")
                span = (hi - lo) if _is_number(lo) and _is_number(hi) and hi > lo else max(abs(a), abs(b), 1.0)
                d += ((a - b) / span) ** 2
            else:
                d += 0.0 if a == b else 1.0
        scored.append((math.sqrt(d), other))
    scored.sort(key=lambda x: x[0])
    return [
        {
            "id": other.pk,
            "distance": round(dist, 3),
            "model_label": other.model_label,
            "final_label": other.final_label,
            "status": other.status,
            "confidence": other.confidence,
            "decided_by": other.decided_by.get_username() if other.decided_by else None,
            "comment": other.comment,
        }
        for dist, other in scored[:limit]
    ]


def review_item_detail(*, item: ReviewItem) -> dict[str, Any]:
    mv = item.prediction.model_version
    probs = item.prediction.probabilities
    if isinstance(probs, dict):
        probabilities = sorted(({"label": k, "p": v} for k, v in probs.items()), key=lambda r: -(r["p"] or 0))
    elif isinstance(probs, list) and len(probs) == len(mv.classes or []):
        probabilities = sorted(
            ({"label": label_key(c), "p": p} for c, p in zip(mv.classes, probs, strict=True)),
            key=lambda r: -(r["p"] or 0),
        )
    else:
        probabilities = []
    return {
        "features": feature_context(mv, item.prediction.inputs or {}),
        "probabilities": probabilities,
        "attribution": feature_attribution(mv, item.prediction.inputs or {}, item.model_label),
        "similar": similar_decisions(item),
        "classes": [label_key(c) for c in (mv.classes or [])],
        "task_type": mv.task_type,
    }
