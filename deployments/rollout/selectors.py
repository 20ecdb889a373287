"""Rollout's reads: deployments of my projects, a deployment's history, the version a rollback
returns to, the curl example of its page."""

from __future__ import annotations

import json
import shlex
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
    """A curl command safe to paste: every piece that comes from data (the body, built from column
    names and category values, and the URL) is one shell word through `shlex.quote`, so no quote,
    `$(...)`, backtick or newline in a name can end the quoting. `$API_KEY` is the one expansion,
    on purpose: the reader's own environment variable."""
    instance = sample_instance(deployment.model_version.input_schema)
    body = json.dumps({"instances": [instance]})
    url = f"{base_url}/api/v1/deployments/{deployment.pk}/predict/"
    return (
        f"curl -s -X POST {shlex.quote(url)} \\\n"
        '  -H "Authorization: Api-Key $API_KEY" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )
