"""Reviewer pages: the queue, one item with its context, queue health per deployment."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST

from deployments.models import Deployment, ReviewItem, ReviewMode, ReviewStatus
from deployments.reviews import context, routing, selectors, services
from mlplatform.errors import DomainError
from mlplatform.ui import report
from projects.access import access, can, project_for
from projects.roles import Action
from projects.views import project_context

ORDERS = {"oldest": "Oldest first", "least_confident": "Least confident first", "newest": "Newest first"}
FILTER_KEYS = ("deployment", "status", "reason", "order", "claimed")


def _filters(request: HttpRequest, project) -> dict[str, str]:
    q = request.GET if request.method == "GET" else request.POST
    f = {
        "deployment": q.get("deployment", ""),
        "status": q.get("status", ReviewStatus.PENDING),
        "reason": q.get("reason", ""),
        "order": q.get("order", "oldest"),
        "claimed": "show" if q.get("claimed") == "show" else "",
    }
    if f["status"] not in ReviewStatus.values and f["status"] != "all":
        f["status"] = ReviewStatus.PENDING
    if f["order"] not in ORDERS:
        f["order"] = "oldest"
    if f["reason"] not in ("", "low_confidence", "class_rule", "out_of_distribution", "sample"):
        f["reason"] = ""
    if not f["deployment"].isdigit() or not Deployment.objects.filter(project=project, pk=f["deployment"]).exists():
        f["deployment"] = ""
    return f


def _queue(request: HttpRequest, project, f: dict[str, str], *, hide_claimed: bool = False):
    return selectors.review_list(
        user=request.user,
        project=project,
        deployment=int(f["deployment"]) if f["deployment"] else None,
        status=None if f["status"] == "all" else f["status"],
        reason=f["reason"] or None,
        order=f["order"],
        hide_claimed=hide_claimed,
    )


def _query(f: dict[str, str]) -> str:
    return urlencode({k: v for k, v in f.items() if v})


@login_required
def review_queue_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    f = _filters(request, project)
    # Items another reviewer has open are left out unless asked for: two people never work the
    # same application.
    qs = _queue(request, project, f, hide_claimed=not f["claimed"])
    items = list(qs[:200])
    hidden = 0 if f["claimed"] else _queue(request, project, f).count() - qs.count()
    deployments = list(Deployment.objects.filter(project=project).order_by("name"))
    for d in deployments:
        services.review_sla_check(deployment=d)
    health_for = [d for d in deployments if not f["deployment"] or str(d.pk) == f["deployment"]][:6]
    return render(
        request,
        "deployments/review_queue.html",
        project_context(
            request,
            project,
            "reviews",
            items=items,
            total=qs.count(),
            hidden=hidden,
            filters=f,
            query=_query(f),
            deployments=deployments,
            health_for=health_for,
            orders=ORDERS,
            statuses=[("all", "All"), *ReviewStatus.choices],
            me=request.user.pk,
        ),
    )


def _bar(p: float | None) -> float:
    return round(max(0.0, min(1.0, p or 0.0)) * 100, 1)


@login_required
@require_http_methods(["GET", "POST"])
def review_item_view(request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
    project = project_for(request.user, pk)
    item = access(
        request.user,
        ReviewItem.objects.filter(project=project).select_related(
            "prediction__model_version", "deployment", "project", "decided_by", "claimed_by"
        ),
        item_id,
        Action.VIEW if request.method == "GET" else Action.REVIEW,
    )
    f = _filters(request, project)
    if request.method == "POST":
        try:
            services.review_decide(
                item=item,
                actor=request.user,
                action=request.POST.get("action", ""),
                label=request.POST.get("label"),
                comment=request.POST.get("comment", ""),
            )
        except DomainError as exc:
            report(request, exc)
            return redirect(reverse("deployments:review-item", args=[project.pk, item.pk]) + "?" + _query(f))
        item.refresh_from_db()
        messages.success(request, f"Item #{item.pk}: {item.get_status_display().lower()}.")
        nxt = _neighbour(request, project, f, item, after=True)
        if nxt is not None:
            return redirect(reverse("deployments:review-item", args=[project.pk, nxt]) + "?" + _query(f))
        return redirect(reverse("deployments:reviews", args=[project.pk]) + "?" + _query(f))

    can_decide = can(request.user, project, Action.REVIEW) and (
        item.status == ReviewStatus.PENDING
        or (item.status == ReviewStatus.ESCALATED and can(request.user, project, Action.DECIDE))
    )
    claim_error = ""
    if can_decide:
        try:
            item = services.review_claim(item=item, actor=request.user, release_others=True)
        except DomainError as exc:
            claim_error = exc.message
    detail = context.review_item_detail(item=item)
    for p in detail["probabilities"]:
        p["width"] = _bar(p["p"])
    biggest = max((abs(a["contribution"]) for a in detail["attribution"]["features"]), default=0) or 1
    for a in detail["attribution"]["features"]:
        a["width"] = round(abs(a["contribution"]) / biggest * 100, 1)
    for row in detail["features"]:
        where = row.get("percentile", row.get("position"))
        row["marker"] = None if where is None else max(0.0, min(100.0, where))
    model_label = routing.label_key(item.model_label)
    other_classes = [c for c in detail["classes"] if c != model_label]
    return render(
        request,
        "deployments/review_item.html",
        project_context(
            request,
            project,
            "reviews",
            item=item,
            detail=detail,
            model_label=model_label,
            other_classes=other_classes,
            can_decide=can_decide and not claim_error,
            claim_error=claim_error,
            filters=f,
            query=_query(f),
            prev_id=_neighbour(request, project, f, item, after=False),
            next_id=_neighbour(request, project, f, item, after=True),
        ),
    )


def _neighbour(request: HttpRequest, project, f: dict[str, str], item: ReviewItem, *, after: bool) -> int | None:
    """The next (or previous) item of the same filtered queue, skipping others' claims."""
    ids = list(_queue(request, project, f, hide_claimed=True).values_list("pk", flat=True)[:1000])
    if item.pk in ids:
        i = ids.index(item.pk)
        pool = ids[i + 1 :] if after else list(reversed(ids[:i]))
    else:
        pool = ids if after else []
    return next((x for x in pool if x != item.pk), None)


@login_required
@require_POST
def review_bulk_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.REVIEW)
    f = _filters(request, project)
    ids = [x for x in request.POST.getlist("ids") if x.isdigit()]
    try:
        result = services.review_bulk_approve(
            user=request.user, ids=[int(x) for x in ids], comment=request.POST.get("comment", "")
        )
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Approved {len(result['approved'])} item(s).")
        for skipped in result["skipped"]:
            messages.warning(request, f"#{skipped['id']} skipped: {skipped['detail']}")
    return redirect(reverse("deployments:reviews", args=[project.pk]) + "?" + _query(f))


def _percent(text: str) -> object:
    """The form's novelty rate is in percent (1 = 1% of in-distribution rows); the policy's a share."""
    text = (text or "").strip()
    if not text:
        return 0
    try:
        return float(text) / 100
    except ValueError:
        return text  # the policy's validation names the field


def _policy_from_form(post, deployment: Deployment) -> dict:
    """The review-policy form's fields as service arguments (only those present)."""
    out: dict = {}
    if "review_threshold" in post:
        out["review_threshold"] = post["review_threshold"].strip() or None
    if "review_mode" in post:
        out["review_mode"] = post["review_mode"]
    if "review_sla_minutes" in post:
        out["review_sla_minutes"] = post["review_sla_minutes"].strip()
    if "review_webhook_url" in post:
        out["review_webhook_url"] = post["review_webhook_url"]
    if any(k in post for k in ("always_review", "class_thresholds", "sample_rate", "novelty_rate")):
        from mlplatform.errors import InvalidInput

        thresholds = {}
        for part in post.get("class_thresholds", "").split(","):
            if not part.strip():
                continue
            label, sep, value = part.rpartition("=")
            if not sep or not label.strip():
                raise InvalidInput("Write label=threshold, separated by commas.", field="review_policy")
            thresholds[label.strip()] = value.strip()
        out["review_policy"] = {
            "class_thresholds": thresholds,
            "always_review": [x.strip() for x in post.get("always_review", "").split(",") if x.strip()],
            "sample_rate": post.get("sample_rate", "").strip() or 0,
            "novelty_rate": _percent(post.get("novelty_rate", "")),
        }
    return out


@login_required
@require_http_methods(["GET", "POST"])
def review_health_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    project = project_for(request.user, pk)
    action = Action.VIEW if request.method == "GET" else Action.MANAGE_DEPLOYMENTS
    deployment = access(request.user, Deployment.objects.filter(project=project), deployment_id, action)
    if request.method == "POST":
        try:
            services.review_policy_update(
                deployment=deployment, actor=request.user, **_policy_from_form(request.POST, deployment)
            )
        except DomainError as exc:
            report(request, exc)
        else:
            messages.success(request, "Review policy saved.")
        return redirect("deployments:review-health", project.pk, deployment.pk)
    services.review_sla_check(deployment=deployment)
    health = selectors.review_health(deployment=deployment)
    policy = selectors.review_policy_of(deployment)
    raw = policy["review_policy"] if isinstance(policy["review_policy"], dict) else {}
    return render(
        request,
        "deployments/review_health.html",
        project_context(
            request,
            project,
            "reviews",
            deployment=deployment,
            health=health,
            policy=policy,
            class_thresholds_text=", ".join(f"{k}={v}" for k, v in (raw.get("class_thresholds") or {}).items()),
            always_review_text=", ".join(str(x) for x in raw.get("always_review") or []),
            sample_rate=raw.get("sample_rate") or 0,
            novelty_percent=round((raw.get("novelty_rate") or 0) * 100, 3) or "",
            modes=ReviewMode.choices,
        ),
    )


urlpatterns: list = [
    path("projects/<int:pk>/reviews/", review_queue_view, name="reviews"),
    path("projects/<int:pk>/reviews/bulk-approve/", review_bulk_view, name="review-bulk"),
    path("projects/<int:pk>/reviews/<int:item_id>/", review_item_view, name="review-item"),
    path("projects/<int:pk>/reviews/health/<int:deployment_id>/", review_health_view, name="review-health"),
]
