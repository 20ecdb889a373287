"""Monitoring UI: the deployment dashboard and its actions (all reads come from snapshots)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from deployments.models import Alert, AlertState, Deployment, ModelVersion
from deployments.monitoring import selectors
from deployments.monitoring.services import alerts, config, retrain, snapshots
from mlplatform.errors import DomainError, InvalidInput
from mlplatform.ui import report
from projects.access import access
from projects.destinations import destinations_visible
from projects.roles import Action
from projects.views import project_context


def _deployment(request: HttpRequest, pk: int, deployment_id: int, action: Action) -> Deployment:
    return access(
        request.user,
        Deployment.objects.filter(project_id=pk).select_related("project", "model_version"),
        deployment_id,
        action,
    )


def _dashboard_url(deployment: Deployment) -> str:
    return f"/projects/{deployment.project_id}/deployments/{deployment.pk}/monitoring/"


def dashboard_data(deployment: Deployment, range_key: str = selectors.DEFAULT_RANGE) -> dict:
    """Everything the charts need, from stored snapshots only (no prediction is read)."""
    snap = selectors.snapshot_latest(deployment)
    latest = snap.data if snap else {}
    mv = deployment.model_version
    test = (mv.metrics or {}).get("test") or {}
    end = timezone.now()
    start = end - selectors.RANGES[range_key]
    return {
        "range": {"key": range_key, "start": start.isoformat(), "end": end.isoformat()},
        "psi_alert": config.monitoring_settings(deployment)["psi_alert"],
        "series": selectors.series(deployment, since=start),
        "drift": (latest.get("drift") or {}).get("features", []),
        "outputs": latest.get("outputs") or {},
        "performance": latest.get("performance") or {},
        "estimation": latest.get("estimation") or {},
        "test": test,
    }


def _estimate_latest(data: dict) -> dict:
    """The latest window's estimate of its own metric (the template cannot index by a variable)."""
    est = data.get("estimation") or {}
    return (est.get("metrics") or {}).get(est.get("metric") or "") or {}


@login_required
def dashboard_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.VIEW)
    range_error, status = None, 200
    try:
        range_key = selectors.series_range(request.GET.get("range"))
    except InvalidInput as exc:  # the page still renders, the error at the range selector
        range_key, range_error, status = selectors.DEFAULT_RANGE, exc.message, 400
    snap = selectors.snapshot_latest(deployment)
    retrains = selectors.retrain_jobs(deployment)
    challengers = {
        mv.pk: mv
        for mv in ModelVersion.objects.filter(
            pk__in=[j.result.get("challenger_id") for j in retrains if j.result and j.result.get("challenger_id")]
        )
    }
    comparison = None
    for job in retrains:
        if job.result and job.result.get("challenger_id") in challengers:
            comparison = job.result
            break
    if comparison:
        names = sorted(
            set(comparison["champion"]["metrics"]) | set(comparison["challenger"]["metrics"]),
            key=lambda n: n != comparison.get("primary_metric"),
        )
        comparison_rows = [
            {
                "name": n,
                "primary": n == comparison.get("primary_metric"),
                "champion": comparison["champion"]["metrics"].get(n, {}),
                "challenger": comparison["challenger"]["metrics"].get(n, {}),
            }
            for n in names
        ]
        gate = retrain.gate_check_challenger(deployment=deployment, challenger=challengers[comparison["challenger_id"]])
        promoted = deployment.model_version_id == comparison["challenger_id"]
    else:
        comparison_rows, gate, promoted = [], None, False
    alerts = list(
        Alert.objects.filter(deployment=deployment)
        .select_related("acknowledged_by")
        .order_by("state", "-first_fired_at")[:50]
    )
    ctx = project_context(
        request,
        deployment.project,
        "deployments",
        deployment=deployment,
        snapshot=snap,
        data=snap.data if snap else {},
        estimate=_estimate_latest(snap.data if snap else {}),
        chart_data=dashboard_data(deployment, range_key),
        range_key=range_key,
        ranges=list(selectors.RANGES),
        range_error=range_error,
        health=selectors.health(deployment),
        alerts=alerts,
        firing=[a for a in alerts if a.state == AlertState.FIRING],
        settings=config.monitoring_settings_shown(
            deployment, show_destinations=destinations_visible(request.user, deployment.project_id)
        ),
        retrains=retrains,
        comparison=comparison,
        comparison_rows=comparison_rows,
        gate=gate,
        promoted=promoted,
    )
    return render(request, "deployments/monitoring.html", ctx, status=status)


@login_required
@require_POST
def snapshot_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.MANAGE_DEPLOYMENTS)
    try:
        snapshots.snapshot_request(deployment=deployment, actor=request.user)
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, "Snapshot queued: the dashboard updates when it finishes.")
    return redirect(_dashboard_url(deployment))


@login_required
@require_POST
def retrain_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.MANAGE_DEPLOYMENTS)
    try:
        retrain.retrain_start(deployment=deployment, actor=request.user)
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, "Retrain started: a challenger is trained on training + labelled production data.")
    return redirect(_dashboard_url(deployment))


@login_required
@require_POST
def promote_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.MANAGE_DEPLOYMENTS)
    try:
        challenger = ModelVersion.objects.filter(
            project=deployment.project, pk=request.POST.get("model_version")
        ).first()
        if challenger is None:
            raise InvalidInput("No such model version in this project.", field="model_version")
        retrain.challenger_promote(deployment=deployment, challenger=challenger, actor=request.user)
    except (DomainError, ValueError) as exc:
        report(request, exc if isinstance(exc, DomainError) else InvalidInput(str(exc), field="model_version"))
    else:
        messages.success(request, f"Version {challenger.version} promoted through the gate.")
    return redirect(_dashboard_url(deployment))


@login_required
@require_POST
def acknowledge_view(request: HttpRequest, pk: int, deployment_id: int, alert_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.MANAGE_DEPLOYMENTS)
    alert = access(request.user, Alert.objects.filter(deployment=deployment), alert_id, Action.MANAGE_DEPLOYMENTS)
    alerts.alert_acknowledge(alert=alert, actor=request.user)
    messages.success(request, "Alert acknowledged.")
    return redirect(_dashboard_url(deployment))


def _float(value: str, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput("A number is required.", field=field) from None


@login_required
@require_http_methods(["POST"])
def settings_view(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    deployment = _deployment(request, pk, deployment_id, Action.MANAGE_DEPLOYMENTS)
    post = request.POST
    try:
        values = {
            "psi_warn": _float(post.get("psi_warn", ""), "psi_warn"),
            "psi_alert": _float(post.get("psi_alert", ""), "psi_alert"),
            "interval_minutes": int(_float(post.get("interval_minutes", ""), "interval_minutes")),
            "alert_email": [e.strip() for e in post.get("alert_email", "").split(",") if e.strip()],
        }
        if "alert_webhook_url" in post:  # the field owners see (roles that manage connections)
            values["alert_webhook_url"] = post["alert_webhook_url"].strip()
        config.monitoring_settings_update(
            deployment=deployment, actor=request.user, values=values, auto_retrain=post.get("auto_retrain") == "on"
        )
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, "Monitoring settings saved.")
    return redirect(_dashboard_url(deployment))


P = "projects/<int:pk>/deployments/<int:deployment_id>/monitoring/"
urlpatterns = [
    path(P, dashboard_view, name="monitoring"),
    path(P + "snapshot/", snapshot_view, name="monitoring-snapshot"),
    path(P + "retrain/", retrain_view, name="monitoring-retrain"),
    path(P + "promote/", promote_view, name="monitoring-promote"),
    path(P + "settings/", settings_view, name="monitoring-settings"),
    path(P + "alerts/<int:alert_id>/acknowledge/", acknowledge_view, name="monitoring-acknowledge"),
]
