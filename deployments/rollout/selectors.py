"""Rollout's reads: deployments of my projects, a deployment's history, the version a rollback
returns to, the curl example of its page."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from deployments.ml.schema import sample_instance
from deployments.models import Deployment, DeploymentChange, ModelVersion
from projects.access import scope


def deployment_list(*, user: Any, project: Any = None) -> QuerySet[Deployment]:
    qs = scope(Deployment.objects.select_related("model_version", "shadow_model_version", "project"), user)
    return qs.filter(project=project) if project is not None else qs


def deployment_history(deployment: Deployment) -> QuerySet[DeploymentChange]:
    return deployment.changes.select_related("from_version", "to_version", "actor")


def previous_version(deployment: Deployment) -> ModelVersion | None:
    """The version that was active before the current one (the last version change's origin)."""
    change = (
        deployment.changes.filter(action__in=("deploy", "promote", "rollback"), to_version=deployment.model_version_id)
        .select_related("from_version")
        .first()
    )
    return change.from_version if change else None


def curl_example(deployment: Deployment, base_url: str) -> str:
    instance = sample_instance(deployment.model_version.input_schema)
    body = json.dumps({"instances": [instance]})
    return (
        f"curl -s -X POST {base_url}/api/v1/deployments/{deployment.pk}/predict/ \\\n"
        '  -H "Authorization: Api-Key $API_KEY" -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )
