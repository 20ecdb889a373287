"""Serving's reads: model versions and loaded pipelines as the hot path needs them, a
deployment's keys and recent predictions, refused calls per kind (for monitoring's error rate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet, Sum

from deployments.ml import scoring
from deployments.models import ApiKey, Deployment, ModelVersion, Prediction, PredictionErrorCount
from mlplatform.artifacts import model_load

_versions: dict[int, ModelVersion] = {}


def version_cached(version_id: int) -> ModelVersion:
    """A model version for serving, without its large JSON (drift reference, card, lineage).

    Only versions whose schema and reference are built are served (the rollout refuses the
    others), and those never change again, so each process reads one at most once; a
    deployment that switches version simply asks for another id.
    """
    version = _versions.get(version_id)
    if version is None:
        version = ModelVersion.objects.defer("reference_stats", "model_card", "lineage").get(pk=version_id)
        if len(_versions) > 64:
            _versions.clear()
        _versions[version_id] = version
    return version


def model_for(version: ModelVersion) -> Any:
    """The loaded pipeline of a version: cached per process, hash-checked before the skops load."""
    return scoring.model_cached(version.pk, version.sha256, lambda: model_load(version.artifact_key, version.sha256))


def deployment_keys(deployment: Deployment) -> QuerySet[ApiKey]:
    return deployment.api_keys.select_related("created_by")


def recent_predictions(deployment: Deployment, limit: int = 10) -> QuerySet[Prediction]:
    return Prediction.objects.filter(deployment=deployment).select_related("model_version")[:limit]


def error_counts(*, deployment: Deployment, start: datetime, end: datetime) -> dict[str, int]:
    """Refused and failed predict calls of the window by kind (they write no Prediction row)."""
    rows = dict(
        PredictionErrorCount.objects.filter(deployment=deployment, minute__gte=start, minute__lt=end)
        .values_list("kind")
        .annotate(n=Sum("count"))
        .order_by()
    )
    return {
        "validation": int(rows.get("validation", 0)),
        "server": int(rows.get("server", 0)),
        "rate_limited": int(rows.get("rate_limited", 0)),
        "paused": int(rows.get("paused", 0)),
    }
