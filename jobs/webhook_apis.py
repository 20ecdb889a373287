"""`POST /api/v1/projects/{id}/webhook/test/`: a signed ping, to check the receiver (owners).

It lives with the delivery (`jobs.webhooks`) because it starts a job; the project's webhook
settings (URL, secret) are `projects.webhook_settings`, served by the project's API.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.webhooks import project_webhook_test
from projects.access import project_for
from projects.roles import Action


class ProjectWebhookTestApi(APIView):
    @extend_schema(
        operation_id="projects_webhook_test_create",
        request=None,
        responses={202: inline_serializer("WebhookTestOut", {"job": serializers.IntegerField()})},
    )
    def post(self, request, pk: int):
        """Send a signed `webhook.ping` event now (a job), to check the receiver."""
        project = project_for(request.user, pk, Action.MANAGE_CONNECTIONS)
        job = project_webhook_test(project=project, actor=request.user)
        return Response(
            {"job": job.pk}, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{job.pk}/"}
        )
