"""UI of the registry: the project's model versions, one version's page, its download."""

from __future__ import annotations

import io

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from deployments.models import ModelVersion
from deployments.registry import selectors
from mlplatform.artifacts import read_verified
from projects.access import access, project_for
from projects.views import project_context


@login_required
def registry_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    versions = list(selectors.model_version_list(user=request.user, project=project))
    rows = [{"v": v, "gate": selectors.gate_check(v, project)} for v in versions]
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
            gate=selectors.gate_check(version, version.project),
            snippet=selectors.usage_snippet(version),
            test_metrics=test_metrics,
            cv_metrics=cv_metrics,
            deployments=version.deployments.all(),
        ),
    )


@login_required
def model_version_download_view(request: HttpRequest, pk: int) -> HttpResponse:
    version = access(request.user, ModelVersion, pk)
    data = read_verified(version.artifact_key, version.sha256)
    response = FileResponse(io.BytesIO(data), as_attachment=True, filename=f"model-v{version.version}.skops")
    response["X-Content-SHA256"] = version.sha256
    return response


urlpatterns = [
    path("projects/<int:pk>/models/", registry_view, name="registry"),
    path("models/<int:pk>/", model_version_view, name="model_version"),
    path("models/<int:pk>/download/", model_version_download_view, name="model_download"),
]
