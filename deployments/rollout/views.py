"""UI of rollout: the project's deployments (deploy a version) and a deployment's page with
every form on it (promote, roll back, pause, decision threshold, retire, API keys, try it). Every write calls the same
service as the API; other rooms' data on the page comes from their selectors."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST

from datasets.models import DatasetVersion
from deployments import prediction_store
from deployments.batch.selectors import batch_jobs_with_logging
from deployments.ml.schema import sample_instance
from deployments.models import ApiKey, Deployment, ModelVersion
from deployments.registry.selectors import gate_check
from deployments.rollout import selectors, services
from deployments.serving import services as serving_services
from deployments.serving.selectors import deployment_keys, recent_predictions
from mlplatform import jsonguard
from mlplatform.errors import DomainError
from mlplatform.ui import report
from projects.access import access, project_for, require
from projects.roles import Action
from projects.views import project_context


@login_required
@require_http_methods(["GET", "POST"])
def deployment_list_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    versions = list(ModelVersion.objects.filter(project=project))
    selected = request.GET.get("version") or request.POST.get("model_version")
    if request.method == "POST":
        require(request.user, project, Action.MANAGE_DEPLOYMENTS)
        try:
            version = ModelVersion.objects.get(project=project, pk=int(request.POST.get("model_version") or 0))
        except (ModelVersion.DoesNotExist, ValueError):
            messages.error(request, "model_version: choose a model version of this project.")
        else:
            threshold = request.POST.get("review_threshold") or None
            try:
                deployment = services.deployment_create(
                    project=project,
                    actor=request.user,
                    name=request.POST.get("name", ""),
                    model_version=version,
                    review_threshold=float(threshold) if threshold else None,
                    unknown_category_policy=request.POST.get("unknown_category_policy", "error"),
                    justification=request.POST.get("justification", ""),
                )
            except ValueError:
                messages.error(request, "review_threshold: a number between 0 and 1.")
            except DomainError as exc:
                report(request, exc)
            else:
                messages.success(request, f"Deployed version {version.version} as “{deployment.name}”.")
                return redirect("deployments:detail", deployment.pk)
    gates = {v.pk: gate_check(v, project) for v in versions}
    chosen = next((v for v in versions if str(v.pk) == str(selected)), versions[0] if versions else None)
    return render(
        request,
        "deployments/list.html",
        project_context(
            request,
            project,
            "deployments",
            deployments=selectors.deployment_list(user=request.user, project=project),
            versions=versions,
            chosen=chosen,
            gate=gates.get(chosen.pk) if chosen else None,
            form=request.POST if request.method == "POST" else {},
        ),
    )


@login_required
def deployment_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = access(
        request.user, Deployment.objects.select_related("project", "model_version", "shadow_model_version"), pk
    )
    return _render_detail(request, deployment)


def _render_detail(request: HttpRequest, deployment: Deployment, **extra) -> HttpResponse:
    base = f"{request.scheme}://{request.get_host()}"
    sample = sample_instance(deployment.model_version.input_schema)
    return render(
        request,
        "deployments/detail.html",
        project_context(
            request,
            deployment.project,
            "deployments",
            deployment=deployment,
            version=deployment.model_version,
            history=selectors.deployment_history(deployment)[:50],
            previous=selectors.previous_version(deployment),
            keys=deployment_keys(deployment),
            versions=ModelVersion.objects.filter(project=deployment.project).exclude(pk=deployment.model_version_id),
            curl=selectors.curl_example(deployment, base),
            sample_json=json.dumps({"instances": [sample]}, indent=2),
            recent=recent_predictions(deployment),
            batches=batch_jobs_with_logging(deployment, limit=5),
            dataset_versions=_dataset_versions(deployment),
            threshold=selectors.threshold_effect(deployment),
            threshold_history=selectors.threshold_history(deployment)[:20],
            costs=selectors.cost_effect(deployment),
            retirement=deployment.changes.filter(action="retire").select_related("actor").first(),
            storage=prediction_store.storage_bytes(deployment),
            retention_days=prediction_store.retention_days(deployment),
            retention_default=settings.PREDICTION_RETENTION_DAYS,
            **extra,
        ),
    )


def _dataset_versions(deployment: Deployment):
    return DatasetVersion.objects.filter(project=deployment.project, status="ready").select_related("dataset")[:50]


def _manage(request: HttpRequest, pk: int) -> Deployment:
    return access(
        request.user, Deployment.objects.select_related("project", "model_version"), pk, Action.MANAGE_DEPLOYMENTS
    )


@login_required
@require_POST
def rollback_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    try:
        d = services.deployment_rollback(
            deployment=deployment, actor=request.user, reason=request.POST.get("reason", "")
        )
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Rolled back to version {d.model_version.version}.")
    return redirect("deployments:detail", pk)


@login_required
@require_POST
def promote_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    try:
        version = ModelVersion.objects.get(project=deployment.project, pk=int(request.POST.get("model_version") or 0))
        d = services.deployment_promote(
            deployment=deployment,
            actor=request.user,
            model_version=version,
            reason=request.POST.get("reason", ""),
            justification=request.POST.get("justification", ""),
        )
    except (ModelVersion.DoesNotExist, ValueError):
        messages.error(request, "model_version: choose a model version of this project.")
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Version {d.model_version.version} is now active.")
    return redirect("deployments:detail", pk)


@login_required
@require_POST
def status_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    try:
        d = services.deployment_set_status(
            deployment=deployment,
            actor=request.user,
            status=request.POST.get("status", ""),
            reason=request.POST.get("reason", ""),
        )
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Deployment {d.get_status_display().lower()}.")
    return redirect("deployments:detail", pk)


def _to_card(pk: int, card: str) -> HttpResponse:
    return redirect(reverse("deployments:detail", args=[pk]) + f"#{card}")


@login_required
@require_POST
def costs_apply_view(request: HttpRequest, pk: int) -> HttpResponse:
    """One click on the cost advice: its threshold and review band (empty band fields: none)."""
    deployment = _manage(request, pk)
    try:
        threshold = float(request.POST.get("threshold") or "")
    except ValueError:
        messages.error(request, "threshold: a probability between 0 and 1, such as 0.35.")
        return _to_card(pk, "costs")
    low, high = (request.POST.get("band_low") or "").strip(), (request.POST.get("band_high") or "").strip()
    try:
        band = [float(low), float(high)] if low or high else None
    except ValueError:
        messages.error(request, "band: two probabilities between 0 and 1.")
        return _to_card(pk, "costs")
    try:
        d = services.deployment_apply_costs(
            deployment=deployment,
            actor=request.user,
            threshold=threshold,
            band=band,
            reason=request.POST.get("reason", ""),
        )
    except DomainError as exc:
        report(request, exc)
    else:
        band_text = f" and review band [{band[0]:g}, {band[1]:g}]" if band else " with no review band"
        messages.success(request, f"Decision threshold {d.active_threshold:g}{band_text}: new predictions use them.")
    return _to_card(pk, "costs")


@login_required
@require_POST
def threshold_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the decision threshold (a typed value, or one click on a row of the validation table);
    an empty value goes back to the most probable class."""
    deployment = _manage(request, pk)
    raw = (request.POST.get("threshold") or "").strip()
    try:
        threshold = float(raw) if raw else None
    except ValueError:
        messages.error(request, "threshold: a probability between 0 and 1, such as 0.35.")
        return _to_card(pk, "threshold")
    try:
        d = services.deployment_set_threshold(
            deployment=deployment, actor=request.user, threshold=threshold, reason=request.POST.get("reason", "")
        )
    except DomainError as exc:
        report(request, exc)
    else:
        now = d.active_threshold
        messages.success(
            request,
            f"Decision threshold {now:g}: new predictions are decided with it."
            if now is not None
            else "No decision threshold: new predictions take the most probable class.",
        )
    return _to_card(pk, "threshold")


@login_required
@require_POST
def retention_view(request: HttpRequest, pk: int) -> HttpResponse:
    """How many days this deployment keeps its logged predictions (empty: the platform default)."""
    deployment = _manage(request, pk)
    raw = (request.POST.get("prediction_retention_days") or "").strip()
    try:
        days = int(raw) if raw else None
    except ValueError:
        messages.error(request, "prediction_retention_days: a whole number of days, such as 90.")
        return _to_card(pk, "storage")
    try:
        d = services.deployment_update(deployment=deployment, actor=request.user, prediction_retention_days=days)
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(
            request,
            f"Predictions are kept {prediction_store.retention_days(d)} days"
            + ("" if days else " (the platform default)")
            + ": older ones are deleted within the hour, their storage freed.",
        )
    return _to_card(pk, "storage")


@login_required
@require_POST
def retire_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Retire for good (owner), confirmed by typing the deployment's name."""
    deployment = access(
        request.user, Deployment.objects.select_related("project", "model_version"), pk, Action.RETIRE_DEPLOYMENT
    )
    if request.POST.get("confirm_name", "") != deployment.name:
        messages.error(request, f"confirm_name: type “{deployment.name}” exactly to confirm the retirement.")
        return _to_card(pk, "retire")
    try:
        services.deployment_retire(deployment=deployment, actor=request.user, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        report(request, exc)
        return _to_card(pk, "retire")
    messages.success(request, f"“{deployment.name}” is retired: predict answers 410 Gone from now on.")
    return redirect("deployments:detail", pk)


@login_required
@require_POST
def key_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    try:
        api_key, clear = serving_services.api_key_create(
            deployment=deployment, actor=request.user, name=request.POST.get("name", "")
        )
    except DomainError as exc:
        report(request, exc)
        return redirect("deployments:detail", pk)
    # Rendered once, never stored in clear: a reload does not show it again.
    return _render_detail(request, deployment, new_key=clear, new_key_obj=api_key)


@login_required
@require_POST
def key_revoke_view(request: HttpRequest, pk: int, key_id: int) -> HttpResponse:
    deployment = _manage(request, pk)
    api_key = ApiKey.objects.filter(deployment=deployment, pk=key_id).first()
    if api_key is not None:
        serving_services.api_key_revoke(api_key=api_key, actor=request.user)
        messages.success(request, f"Key “{api_key.name}” revoked.")
    return redirect("deployments:detail", pk)


@login_required
@require_POST
def try_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = access(
        request.user,
        Deployment.objects.select_related("project", "model_version", "shadow_model_version"),
        pk,
        Action.PREDICT,
    )
    raw = request.POST.get("body", "")
    try:
        body = jsonguard.loads(raw)
        instances = body.get("instances") if isinstance(body, dict) else None
        result = serving_services.predict(deployment=deployment, instances=instances, caller=f"user:{request.user.pk}")
    except ValueError as exc:
        return _render_detail(request, deployment, try_body=raw, try_error={"detail": f"Not valid JSON: {exc}"})
    except DomainError as exc:
        return _render_detail(
            request, deployment, try_body=raw, try_error={"detail": exc.message, "errors": exc.errors or {}}
        )
    answer = result.as_dict()
    return _render_detail(
        request, deployment, try_body=raw, try_result=json.dumps(answer, indent=2), try_summary=answer["predictions"]
    )


urlpatterns = [
    path("projects/<int:pk>/deployments/", deployment_list_view, name="list"),
    path("deployments/<int:pk>/", deployment_view, name="detail"),
    path("deployments/<int:pk>/rollback/", rollback_view, name="rollback"),
    path("deployments/<int:pk>/promote/", promote_view, name="promote"),
    path("deployments/<int:pk>/status/", status_view, name="status"),
    path("deployments/<int:pk>/threshold/", threshold_view, name="threshold"),
    path("deployments/<int:pk>/costs/", costs_apply_view, name="costs-apply"),
    path("deployments/<int:pk>/retention/", retention_view, name="retention"),
    path("deployments/<int:pk>/retire/", retire_view, name="retire"),
    path("deployments/<int:pk>/keys/", key_create_view, name="key_create"),
    path("deployments/<int:pk>/keys/<int:key_id>/revoke/", key_revoke_view, name="key_revoke"),
    path("deployments/<int:pk>/try/", try_view, name="try"),
]
