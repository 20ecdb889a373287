"""UI of batch inference: start a batch from the deployment page, download its output."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_POST

from datasets.models import DatasetVersion
from deployments.batch import selectors, services
from deployments.models import Deployment
from mlplatform.errors import DomainError
from mlplatform.ui import gone_as_text, report
from projects.access import access
from projects.roles import Action


@login_required
@require_POST
def batch_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = access(
        request.user, Deployment.objects.select_related("project", "model_version"), pk, Action.MANAGE_DEPLOYMENTS
    )
    dv = None
    if request.POST.get("dataset_version"):
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
    gone = gone_as_text(services.batch_output_gone, job) if job is not None else None
    if gone is not None:
        return gone
    if job is None or not (job.result or {}).get("output_key"):
        raise Http404
    fmt = job.result.get("output_format", "csv")
    return FileResponse(
        default_storage.open(job.result["output_key"], "rb"),
        as_attachment=True,
        filename=f"{deployment.name}-batch-{job.pk}.{fmt}".replace(" ", "_"),
    )


urlpatterns = [
    path("deployments/<int:pk>/batch/", batch_view, name="batch"),
    path("deployments/<int:pk>/batch/<int:job_id>/download/", batch_download_view, name="batch_download"),
]
