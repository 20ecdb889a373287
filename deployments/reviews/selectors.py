"""The review queue's reads: the queue, what a calling application learns about its held
prediction, a deployment's review policy and the queue's health (QC-sample accuracy estimate,
threshold advice)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from deployments.models import Deployment, Prediction, ReviewItem, ReviewStatus
from deployments.reviews.routing import label_key, novelty_scorer, policy_of
from experiments.ml.metrics import wilson_interval
from projects.access import scope

DECIDED = (ReviewStatus.APPROVED, ReviewStatus.OVERRIDDEN)


def claim_free(actor: Any, now) -> Q:
    """Items nobody else holds: unclaimed, claimed by `actor`, or whose claim ran out."""
    return Q(claimed_by__isnull=True) | Q(claimed_by=actor) | Q(claimed_until__lt=now)


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


def review_policy_of(deployment: Deployment) -> dict[str, Any]:
    return {
        "review_threshold": deployment.review_threshold,
        "review_mode": deployment.review_mode,
        "review_policy": deployment.review_policy or {},
        "review_sla_minutes": deployment.review_sla_minutes,
        "review_webhook_url": deployment.review_webhook_url,
        "review_webhook_set": bool(deployment.review_webhook_url),
    }


def novelty_status(deployment: Deployment, rate: float) -> dict[str, Any]:
    """Whether the deployed version can route by novelty, and its false-alarm rate measured on
    held-out training rows (never used to fit or calibrate) at `rate` (or 1% when off)."""
    scorer = novelty_scorer(deployment.model_version_id)
    if scorer is None:
        return {"available": False, "enabled": False, "false_alarm": None}
    return {
        "available": True,
        "enabled": rate > 0,
        "features": len(scorer.names),
        "false_alarm": scorer.false_alarm(rate or 0.01),
    }


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
        qs = qs.filter(claim_free(user, timezone.now()))
    if order == "least_confident":
        return qs.order_by("confidence", "created_at", "pk")
    if order == "newest":
        return qs.order_by("-created_at", "-pk")
    return qs.order_by("created_at", "pk")


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
    low, high = wilson_interval(acc, n_eff)
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


def _per_class_and_reviewer(
    decided: list[tuple], waits: list[float], overridden: list[bool], *, now: Any, window_days: int
) -> tuple[dict[str, list[bool]], dict[str, dict[str, Any]]]:
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
    return per_class, reviewers


def _advice(deployment: Deployment, decided: list[tuple], *, since: Any, now: Any) -> list[dict[str, Any]]:
    # What the API served (batch predictions are never routed to review).
    preds = Prediction.objects.filter(deployment=deployment, created_at__gte=since).exclude(source="batch")
    first = preds.aggregate(m=Min("created_at"))["m"]
    # Under a day of traffic, per-day figures would extrapolate minutes: count it as one day.
    days = max((now - first).total_seconds() / 86400, 1.0) if first else 0
    # One pass in the database, however many predictions: a conditional count per threshold.
    candidates = advice_thresholds(deployment.review_threshold)
    load = preds.exclude(confidence=None).aggregate(
        total=Count("id"), **{f"t{i}": Count("id", filter=Q(confidence__lt=t)) for i, t in enumerate(candidates)}
    )
    return threshold_advice(
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
    per_class, reviewers = _per_class_and_reviewer(decided, waits, overridden, now=now, window_days=window_days)
    qc = qc_estimate(
        [(s == ReviewStatus.APPROVED, w) for _c, _d, s, _l, _u, reason, _conf, w in decided if reason == "sample"]
    )
    advice = _advice(deployment, decided, since=since, now=now)
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
            "novelty_rate": policy.novelty_rate,
        },
        "novelty": novelty_status(deployment, policy.novelty_rate),
        "routed_by_reason": dict(
            items.filter(created_at__gte=since).values_list("reason").annotate(n=Count("id")).values_list("reason", "n")
        ),
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


def review_band(deployment: Deployment, positive: Any, negative: Any) -> tuple[float | None, float | None]:
    """The band of positive-class probabilities a binary deployment sends to review, as (low, high):
    a positive answer (probability p) is reviewed when p is under its class threshold (high), a
    negative one when 1 - p is under its own (so p above low = 1 - that threshold)."""
    policy = policy_of(deployment)
    c_pos = policy.class_thresholds.get(label_key(positive), policy.threshold)
    c_neg = policy.class_thresholds.get(label_key(negative), policy.threshold)
    return (1 - c_neg if c_neg is not None else None), c_pos


def reviewed_outcomes(*, deployment: Deployment, version: Any, positive: Any, limit: int = 20000) -> dict[str, Any]:
    """The decided review items of `version` on this deployment, as arrays for a cost estimate on
    live traffic: the positive class's probability, whether the reviewer's label is positive, and
    a Horvitz-Thompson weight. Routed items (low confidence, class rule) are a census of their
    stratum: weight = routed / decided in it (pending ones are assumed like the decided ones); QC
    sample items weigh 1 / sampling rate, standing for every unreviewed prediction."""
    key = label_key(positive)
    decided_q = Q(status__in=[ReviewStatus.APPROVED, ReviewStatus.OVERRIDDEN])
    base = ReviewItem.objects.filter(deployment=deployment, prediction__model_version=version)
    counts = {r["reason"]: r for r in base.values("reason").annotate(n=Count("id"), d=Count("id", filter=decided_q))}
    rows = list(
        base.filter(decided_q)
        .order_by("-decided_at")
        .values_list("reason", "sample_weight", "final_label", "prediction__probabilities")[:limit]
    )
    scores, labels, weights = [], [], []
    for reason, weight, final_label, probabilities in rows:
        p = probabilities.get(key) if isinstance(probabilities, dict) else None
        if p is None or final_label is None:
            continue
        if reason == "sample":
            w = float(weight or 1.0)
        else:
            c = counts.get(reason) or {}
            w = (c.get("n") or 1) / max(c.get("d") or 1, 1)
        scores.append(float(p))
        labels.append(label_key(final_label) == key)
        weights.append(w)
    return {
        "scores": scores,
        "positive": labels,
        "weights": weights,
        "decided": len(scores),
        "sample": sum(1 for r in rows if r[0] == "sample"),
        "pending": sum((c["n"] - c["d"]) for c in counts.values()),
    }
