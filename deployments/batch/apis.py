"""REST API of batch inference.

GET  deployments/<pk>/batch/                      the deployment's batch jobs (any role)
POST deployments/<pk>/batch/                      multipart `file` or JSON `dataset_version` (202 + job)
GET  deployments/<pk>/batch/<job_id>/download/    the output file once scored
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.models import DatasetVersion
from deployments.batch import selectors, services
from deployments.models import Deployment
from jobs.models import Job
from mlplatform.api import ChoiceField, accepted, location_header
from mlplatform.errors import InvalidInput
from projects.access import access
from projects.roles import Action


class BatchSerializer(serializers.Serializer):
    file = serializers.FileField(required=False)
    dataset_version = serializers.IntegerField(required=False)
    output_format = ChoiceField(choices=["csv", "parquet"], default="csv")
    log_predictions = serializers.BooleanField(default=True)


def batch_job_payload(job: Job, deployment: Deployment) -> dict[str, Any]:
    data = {
        "id": job.pk,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "created_at": job.created_at,
        "result": job.result or {},
    }
    if job.status == "succeeded" and (job.result or {}).get("output_key"):
        data["download_url"] = f"/api/v1/deployments/{deployment.pk}/batch/{job.pk}/download/"
    log_id = (job.result or {}).get("logging_job_id")
    if log_id:  # the child job writing the batch's predictions to the monitoring log
        log = Job.objects.filter(pk=log_id).only("status", "progress", "message").first()
        if log is not None:
            data["logging"] = {"job": log.pk, "status": log.status, "progress": log.progress, "message": log.message}
    return data


def _deployment(request, pk: int, action: Action) -> Deployment:
    return access(request.user, Deployment.objects.select_related("project", "model_version"), pk, action)


class BatchApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        deployment = _deployment(request, pk, Action.VIEW)
        jobs = selectors.batch_jobs(deployment)[:50]
        return Response([batch_job_payload(j, deployment) for j in jobs])

    @extend_schema(request=BatchSerializer, responses={202: OpenApiTypes.OBJECT}, parameters=[location_header()])
    def post(self, request, pk: int):
        deployment = _deployment(request, pk, Action.MANAGE_DEPLOYMENTS)
        body = BatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        v = body.validated_data
        dv = None
        if v.get("dataset_version") is not None:
            dv = DatasetVersion.objects.filter(pk=v["dataset_version"], project=deployment.project).first()
            if dv is None:
                raise InvalidInput(
                    f"No such object in this project: {v['dataset_version']!r}.", field="dataset_version"
                )
        job = services.batch_start(
            deployment=deployment,
            actor=request.user,
            upload=v.get("file"),
            dataset_version=dv,
            output_format=v["output_format"],
            log_predictions=v["log_predictions"],
        )
        return accepted(batch_job_payload(job, deployment), job)


class BatchDownloadApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, pk: int, job_id: int):
        deployment = _deployment(request, pk, Action.VIEW)
        job = selectors.batch_jobs(deployment).filter(pk=job_id).first()
        if job is not None:
            services.batch_output_gone(job)
        if job is None or job.status != "succeeded" or not (job.result or {}).get("output_key"):
            raise Http404
        fmt = job.result.get("output_format", "csv")
        return FileResponse(
            default_storage.open(job.result["output_key"], "rb"),
            as_attachment=True,
            filename=f"{deployment.name}-batch-{job.pk}.{fmt}".replace(" ", "_"),
            content_type="text/csv" if fmt == "csv" else "application/octet-stream",
        )


# Names as the router gave them when batch was an action of the deployments viewset (public contract).
urlpatterns = [
    path("deployments/<int:pk>/batch/", BatchApi.as_view(), name="deployment-batch"),
    path(
        "deployments/<int:pk>/batch/<int:job_id>/download/",
        BatchDownloadApi.as_view(),
        name="deployment-batch-download",
    ),
]
