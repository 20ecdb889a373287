"""Reads of the deployments app: registry, deployments, usage snippets."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from deployments import serving
from deployments.models import ApiKey, Deployment, DeploymentChange, ModelVersion
from jobs.models import Job
from projects.access import scope


def model_version_list(*, user: Any, project: Any = None) -> QuerySet[ModelVersion]:
    qs = scope(ModelVersion.objects.select_related("created_by", "project"), user)
    return qs.filter(project=project) if project is not None else qs


def deployment_list(*, user: Any, project: Any = None) -> QuerySet[Deployment]:
    qs = scope(Deployment.objects.select_related("model_version", "shadow_model_version", "project"), user)
    return qs.filter(project=project) if project is not None else qs


def deployment_history(deployment: Deployment) -> QuerySet[DeploymentChange]:
    return deployment.changes.select_related("from_version", "to_version", "actor")


def deployment_keys(deployment: Deployment) -> QuerySet[ApiKey]:
    return deployment.api_keys.select_related("created_by")


def batch_jobs(deployment: Deployment) -> QuerySet[Job]:
    return Job.objects.filter(
        project=deployment.project_id, kind="deployment.batch", target_type="deployment", target_id=deployment.pk
    ).order_by("-created_at")


def usage_snippet(version: ModelVersion, filename: str | None = None) -> str:
    """Python that loads the downloaded file with skops (allowlist, hash check) and predicts."""
    filename = filename or f"model-v{version.version}.skops"
    instance = serving.sample_instance(version.input_schema)
    predict = "predict_proba" if version.task_type == "classification" else "predict"
    return (
        "import hashlib\n"
        "import pandas as pd\n"
        "import skops.io as sio\n\n"
        f'path = "{filename}"\n'
        f'expected_sha256 = "{version.sha256}"\n'
        'with open(path, "rb") as fh:\n'
        "    data = fh.read()\n"
        'assert hashlib.sha256(data).hexdigest() == expected_sha256, "file changed since registration"\n'
        "# Review the types skops reports before trusting them; never trust them blindly.\n"
        "print(sio.get_untrusted_types(data=data))\n"
        "model = sio.loads(data, trusted=[...])  # paste the reviewed list here\n\n"
        f"X = pd.DataFrame([{json.dumps(instance)}])\n"
        f"print(model.predict(X))\n" + (f"print(model.{predict}(X))\n" if predict != "predict" else "")
    )


def curl_example(deployment: Deployment, base_url: str) -> str:
    instance = serving.sample_instance(deployment.model_version.input_schema)
    body = json.dumps({"instances": [instance]})
    return (
        f"curl -s -X POST {base_url}/api/v1/deployments/{deployment.pk}/predict/ \\\n"
        '  -H "Authorization: Api-Key $API_KEY" -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )
