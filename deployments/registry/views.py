"""UI of the registry: the project's model versions, one version's page (its preparation, the
project's go / no-go decision and the deploy form, each answering at its control), its download,
and the registration of an evaluated run (the same services as the API)."""

from __future__ import annotations

import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from deployments.models import ModelVersion
from deployments.registry import selectors, services
from deployments.rollout import services as rollout_services
from experiments.models import Run
from mlplatform.artifacts import read_verified
from mlplatform.errors import DomainError, InvalidInput
from mlplatform.ui import gone_as_text, report
from projects import services as project_services
from projects.access import access, project_for, require
from projects.models import Decision
from projects.roles import Action
from projects.views import project_context


@login_required
def registry_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    versions = list(selectors.model_version_list(user=request.user, project=project))
    rows = [{"v": v, "gate": selectors.gate_check(v, project)} for v in versions]
    return render(request, "deployments/registry.html", project_context(request, project, "models", rows=rows))


@login_required
def model_version_view(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_version(request, _version(request, pk))


def _version(request: HttpRequest, pk: int, action: Action = Action.VIEW) -> ModelVersion:
    return access(request.user, ModelVersion.objects.select_related("project", "created_by"), pk, action)


def _render_version(request: HttpRequest, version: ModelVersion, status: int = 200, **extra) -> HttpResponse:
    """The version's page; `errors` ({form: {field: message}}) and `posted` put a refused form's
    answer under the control that caused it, with what was typed kept."""
    test_metrics = [{"name": k, **v} for k, v in (version.metrics.get("test") or {}).items() if isinstance(v, dict)]
    cv_metrics = [{"name": k, **v} for k, v in (version.metrics.get("cv") or {}).items() if isinstance(v, dict)]
    project = version.project
    job = selectors.prepare_job(version)
    context = project_context(
        request,
        project,
        "models",
        version=version,
        gate=selectors.gate_check(version, project),
        snippet=selectors.usage_snippet(version),
        test_metrics=test_metrics,
        cv_metrics=cv_metrics,
        deployments=version.deployments.all(),
        prepare_job=job if job is not None and (version.reference_status != "ready" or not job.is_terminal) else None,
        decisions=Decision.choices,
        errors=extra.pop("errors", {}),
        posted=extra.pop("posted", {}),
        **extra,
    )
    return render(request, "deployments/model_version.html", context, status=status)


def _field_errors(exc: DomainError, default: str) -> dict[str, str]:
    if exc.errors:
        return {k: " ".join(str(m) for m in (v if isinstance(v, list) else [v])) for k, v in exc.errors.items()}
    return {exc.field or default: exc.message}


@login_required
@require_POST
def model_version_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's go / no-go decision, from the version it is about (owners)."""
    version = _version(request, pk)
    require(request.user, version.project, Action.DECIDE)
    try:
        project_services.project_decide(
            project=version.project,
            actor=request.user,
            decision=request.POST.get("decision", ""),
            rationale=request.POST.get("decision_rationale", ""),
        )
    except DomainError as exc:
        errors = {"decide": _field_errors(exc, "decision")}
        return _render_version(request, version, status=400, errors=errors, posted=request.POST)
    version.project.refresh_from_db()
    messages.success(request, f"Decision recorded: {version.project.get_decision_display().lower()}.")
    return redirect(reverse("deployments:model_version", args=[pk]) + "#decide")


def _threshold(raw: str) -> float | None:
    if not (raw or "").strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput("A confidence between 0 and 1, or empty for no review.", field="review_threshold") from None


@login_required
@require_POST
def model_version_deploy_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Deploy this version (the promotion gate decides; an owner may override it in writing)."""
    version = _version(request, pk, Action.MANAGE_DEPLOYMENTS)
    post = request.POST
    try:
        deployment = rollout_services.deployment_create(
            project=version.project,
            actor=request.user,
            name=post.get("name", ""),
            model_version=version,
            review_threshold=_threshold(post.get("review_threshold", "")),
            unknown_category_policy=post.get("unknown_category_policy", "error"),
            justification=post.get("justification", ""),
        )
    except DomainError as exc:
        errors = {"deploy": _field_errors(exc, "form")}
        if "model_version" in errors["deploy"]:
            errors["deploy"]["model_version"] = exc.message  # the gate: its reasons are on the page
        return _render_version(request, version, status=400, errors=errors, posted=post)
    messages.success(request, f"Deployed version {version.version} as “{deployment.name}”.")
    return redirect("deployments:detail", deployment.pk)


@login_required
@require_POST
def run_register_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """Register an evaluated run (the API's `POST /runs/{id}/register/`): its page then follows
    the preparation job."""
    run = access(request.user, Run.objects.select_related("experiment", "project"), run_id, Action.RUN_EXPERIMENTS)
    try:
        version = services.model_version_register(run=run, actor=request.user)
    except DomainError as exc:
        report(request, exc)
        return redirect(reverse("experiments:run", args=[run.pk]) + "#register")
    messages.success(
        request, f"Registered as model version {version.version}: building its input schema and drift reference."
    )
    return redirect("deployments:model_version", version.pk)


@login_required
def model_version_download_view(request: HttpRequest, pk: int) -> HttpResponse:
    version = access(request.user, ModelVersion, pk)
    gone = gone_as_text(services.model_file_gone, version)
    if gone is not None:
        return gone
    data = read_verified(version.artifact_key, version.sha256)
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=f"model-v{version.version}.skops")
    response["X-Content-SHA256"] = version.sha256
    return response


urlpatterns = [
    path("projects/<int:pk>/models/", registry_view, name="registry"),
    path("models/<int:pk>/", model_version_view, name="model_version"),
    path("models/<int:pk>/download/", model_version_download_view, name="model_download"),
    path("models/<int:pk>/decide/", model_version_decide_view, name="model_version_decide"),
    path("models/<int:pk>/deploy/", model_version_deploy_view, name="model_version_deploy"),
    path("runs/<int:run_id>/register/", run_register_view, name="run_register"),
]
