"""UI of the registry and deployments. Every write calls the same service as the API."""

from __future__ import annotations

import io
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from deployments import registry, selectors, services
from deployments.models import ApiKey, Deployment, ModelVersion, Prediction
from jobs.models import Job
from mlplatform.errors import DomainError
from mlplatform.ui import report
from projects.access import access, project_for, require
from projects.roles import Action
from projects.views import project_context


@login_required
def registry_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    versions = list(selectors.model_version_list(user=request.user, project=project))
    rows = [{"v": v, "gate": registry.gate_check(v, project)} for v in versions]
    return render(request, "deployments/registry.html", project_context(request, project, "models", rows=rows))


@login_required
def model_version_view(request: HttpRequest, pk: int) -> HttpResponse:
    version = access(request.user, ModelVersion.objects.select_related("project", "created_by"), pk)
    test_metrics = [{"name": k, **v} for k, v in (version.metrics.get("test") or {}).items() if isinstance(v, dict)]
    cv_metrics = [{"name": k, **v} for k, v in (version.metrics.get("cv") or {}).items() if isinstance(v, dict)]
    return render(
        request,
        "deployments/model_version.html",
        project_context(
            request,
            version.project,
            "models",
            version=version,
            gate=registry.gate_check(version, version.project),
            snippet=selectors.usage_snippet(version),
            test_metrics=test_metrics,
            cv_metrics=cv_metrics,
            deployments=version.deployments.all(),
        ),
    )


@login_required
def model_version_download_view(request: HttpRequest, pk: int) -> HttpResponse:
    version = access(request.user, ModelVersion, pk)
    from mlplatform.artifacts import read_verified

    data = read_verified(version.artifact_key, version.sha256)
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=f"model-v{version.version}.skops")
    response["X-Content-SHA256"] = version.sha256
    return response


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
    gates = {v.pk: registry.gate_check(v, project) for v in versions}
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
    from deployments import serving

    base = f"{request.scheme}://{request.get_host()}"
    sample = serving.sample_instance(deployment.model_version.input_schema)
    batches = list(selectors.batch_jobs(deployment)[:5])
    log_ids = [b.result["logging_job_id"] for b in batches if (b.result or {}).get("logging_job_id")]
    logs = {j.pk: j for j in Job.objects.filter(pk__in=log_ids)}
    for b in batches:  # the child job logging each batch's predictions for monitoring
        b.log_job = logs.get((b.result or {}).get("logging_job_id"))
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
            previous=services.previous_version(deployment),
            keys=selectors.deployment_keys(deployment),
            versions=ModelVersion.objects.filter(project=deployment.project).exclude(pk=deployment.model_version_id),
            curl=selectors.curl_example(deployment, base),
            sample_json=json.dumps({"instances": [sample]}, indent=2),
            recent=Prediction.objects.filter(deployment=deployment).select_related("model_version")[:10],
            batches=batches,
            dataset_versions=_dataset_versions(deployment),
            **extra,
        ),
    )


def _dataset_versions(deployment: Deployment):
    from datasets.models import DatasetVersion

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


@login_required
@require_POST
def key_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    try:
        api_key, clear = services.api_key_create(
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
        services.api_key_revoke(api_key=api_key, actor=request.user)
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
        body = json.loads(raw)
        instances = body.get("instances") if isinstance(body, dict) else None
        result = services.predict(deployment=deployment, instances=instances, caller=f"user:{request.user.pk}")
    except ValueError as exc:
        return _render_detail(request, deployment, try_body=raw, try_error={"detail": f"Not valid JSON: {exc}"})
    except DomainError as exc:
        return _render_detail(
            request, deployment, try_body=raw, try_error={"detail": exc.message, "errors": exc.errors or {}}
        )
    return _render_detail(request, deployment, try_body=raw, try_result=json.dumps(result.as_dict(), indent=2))


@login_required
@require_POST
def batch_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _manage(request, pk)
    dv = None
    if request.POST.get("dataset_version"):
        from datasets.models import DatasetVersion

        dv = DatasetVersion.objects.filter(project=deployment.project, pk=request.POST["dataset_version"]).first()
        if dv is None:
            messages.error(request, "dataset_version: no such dataset version in this project.")
            return redirect("deployments:detail", pk)
    try:
        job = services.batch_start(
            deployment=deployment,
            actor=request.user,
            upload=request.FILES.get("file") if dv is None else None,
            dataset_version=dv,
            output_format=request.POST.get("output_format", "csv"),
        )
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Batch job #{job.pk} started.")
    return redirect(f"/deployments/{pk}/#batch")


@login_required
def batch_download_view(request: HttpRequest, pk: int, job_id: int) -> HttpResponse:
    deployment = access(request.user, Deployment, pk)
    job = selectors.batch_jobs(deployment).filter(pk=job_id, status="succeeded").first()
    if job is None or not (job.result or {}).get("output_key"):
        from django.http import Http404

        raise Http404
    from django.core.files.storage import default_storage

    fmt = job.result.get("output_format", "csv")
    return FileResponse(
        default_storage.open(job.result["output_key"], "rb"),
        as_attachment=True,
        filename=f"{deployment.name}-batch-{job.pk}.{fmt}".replace(" ", "_"),
    )


urlpatterns = [
    path("projects/<int:pk>/models/", registry_view, name="registry"),
    path("models/<int:pk>/", model_version_view, name="model_version"),
    path("models/<int:pk>/download/", model_version_download_view, name="model_download"),
    path("projects/<int:pk>/deployments/", deployment_list_view, name="list"),
    path("deployments/<int:pk>/", deployment_view, name="detail"),
    path("deployments/<int:pk>/rollback/", rollback_view, name="rollback"),
    path("deployments/<int:pk>/promote/", promote_view, name="promote"),
    path("deployments/<int:pk>/status/", status_view, name="status"),
    path("deployments/<int:pk>/keys/", key_create_view, name="key_create"),
    path("deployments/<int:pk>/keys/<int:key_id>/revoke/", key_revoke_view, name="key_revoke"),
    path("deployments/<int:pk>/try/", try_view, name="try"),
    path("deployments/<int:pk>/batch/", batch_view, name="batch"),
    path("deployments/<int:pk>/batch/<int:job_id>/download/", batch_download_view, name="batch_download"),
]
