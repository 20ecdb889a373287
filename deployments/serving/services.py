"""Serving's writes: predictions (validated, scored, logged, routed to review), API keys, refusal counts.

The hot path: `predict` validates with the version's compiled validator, scores through the
compiled path or the pipeline, and logs the rows through the prediction log's Redis queue (see
`prediction_log`), in the same atomic Redis call that admits an API key's call (`keys.KeyGate`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.keys import hash_key, new_key
from deployments.events import api_key_created_event, api_key_revoked_event
from deployments.ml import fastpath, schema, scoring
from deployments.models import (
    ApiKey,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Prediction,
    PredictionErrorCount,
    PredictionStatus,
    ReviewMode,
    logged_prediction,
    uuid7,
)
from deployments.reviews import services as review_services
from deployments.serving import keys, prediction_log
from deployments.serving.keys import KeyAuth, KeyGate
from deployments.serving.selectors import model_for, version_cached
from mlplatform.errors import Conflict, Gone, InvalidInput, PayloadTooLarge, Unavailable

logger = logging.getLogger(__name__)


# --- API keys -------------------------------------------------------------------------------------


def api_key_create(
    *, deployment: Deployment, actor: Any, name: str, rate_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """A new key for one deployment. The clear key is returned once and never stored.

    Without `rate_per_minute` the key gets the installation's default (`API_KEY_RATE`).
    """
    if deployment.status == DeploymentStatus.RETIRED:
        raise Conflict(f"The deployment “{deployment.name}” is retired: it takes no new key.", field="deployment")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Name the key after the application that uses it.", field="name")
    if rate_per_minute is not None and not 1 <= rate_per_minute <= 1_000_000:
        raise InvalidInput("Between 1 and 1,000,000 requests per minute.", field="rate_per_minute")
    key = new_key("mlpk")
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            project=deployment.project,
            deployment=deployment,
            name=name[:80],
            prefix=key[:12],
            key_hash=hash_key(key),
            rate_per_minute=rate_per_minute or settings.API_KEY_RATE_PER_MINUTE,
            created_by=actor,
        )
        api_key_created_event(actor=actor, api_key=api_key)
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, actor: Any) -> ApiKey:
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            keys.serving_changed()  # an update() sends no post_save: the web processes must drop the key now
            api_key_revoked_event(actor=actor, api_key=api_key)
    api_key.refresh_from_db()
    return api_key


def api_key_authenticate(key: str) -> KeyAuth | None:
    """The live key for this clear text, or None. Fast: one SHA-256, and no query when cached.

    Each process keeps the keys it has seen, with their deployment, for SERVING_KEY_CACHE_SECONDS,
    with the serving generation they were read at. Nothing is asked of Redis here: the call's
    `KeyGate.admit`, made once the answer is ready, checks that generation in the same atomic
    call that counts the rate limit and queues the prediction rows. Any change of a deployment
    or key anywhere (`keys.serving_changed`) bumps it, so a revoked key gets 401 and a paused
    deployment 503 on the next call. Without Redis: no cache, one indexed query per request.
    """
    return keys.api_key_for_digest(hash_key(key))


def api_key_admit(found: KeyAuth) -> ApiKey:
    """Admit a call that logs no prediction (feedback): the key must still be live (the cache is
    checked against the generation, or the database asked again) and within its rate limit."""
    from rest_framework.exceptions import Throttled

    def admit(current: KeyAuth) -> ApiKey:
        if current.gate is not None:
            current.gate.admit([])
        else:
            keys.key_rate_limit(current.api_key)
        return current.api_key

    try:
        return keys.with_api_key(found, admit)
    except keys.RateLimited as exc:
        raise Throttled(wait=exc.retry_after, detail=str(exc)) from None


# --- refusal counts --------------------------------------------------------------------------------


def error_count(*, deployment: Deployment, kind: str, n: int = 1) -> None:
    """Add n refused / failed calls of this kind to the deployment's current minute (one upsert)."""
    minute = timezone.now().replace(second=0, microsecond=0)
    table = PredictionErrorCount._meta.db_table
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (project_id, deployment_id, minute, kind, count) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (deployment_id, minute, kind) DO UPDATE SET count = "
                f"{table}.count + EXCLUDED.count",
                [deployment.project_id, deployment.pk, minute, kind, n],
            )
    except Exception:
        logger.warning("could not count a %s error of deployment %s", kind, deployment.pk, exc_info=True)


def predictions_flush() -> int:
    """Write what the prediction log's queue holds now, so that what follows reads every
    prediction answered so far (feedback on a fresh id, a monitoring snapshot)."""
    return prediction_log.flush()


# --- predictions ----------------------------------------------------------------------------------


@dataclass
class PredictResult:
    model_version: int
    predictions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "predictions": self.predictions}


def _validator(deployment: Deployment, version: ModelVersion) -> schema.Validator:
    return schema.validator_cached(
        key=(version.pk, version.sha256),
        schema=version.input_schema,
        unknown_policy=deployment.unknown_category_policy,
        allow_missing=deployment.allow_missing,
    )


def _refuse_request(deployment: Deployment, instances: Any) -> None:
    """A retired or paused deployment, no instances or too many: refused (and counted) before any work."""
    if deployment.status == DeploymentStatus.RETIRED:
        raise Gone(
            f"The deployment “{deployment.name}” was retired and no longer serves predictions. "
            "Ask its project for the deployment that replaced it.",
            field="deployment",
        )
    if deployment.status != DeploymentStatus.ACTIVE:
        error_count(deployment=deployment, kind="paused")
        raise Unavailable(
            f"The deployment “{deployment.name}” is paused; predictions resume when an editor resumes it."
        )
    limit = deployment.max_instances or settings.PREDICT_MAX_INSTANCES
    if not isinstance(instances, list) or not instances:
        error_count(deployment=deployment, kind="validation")
        raise InvalidInput("Send a non-empty list of instances.", field="instances")
    if len(instances) > limit:
        error_count(deployment=deployment, kind="validation")
        raise PayloadTooLarge(f"At most {limit} instances per request (got {len(instances)}).", field="instances")


def predict(
    *,
    deployment: Deployment,
    instances: Any,
    caller: str,
    source: str = "api",
    started: float | None = None,
    gate: KeyGate | None = None,
) -> PredictResult:
    """Validate, score and log one request. The API, the try-it form and the simulator call this.

    Nothing is logged when any instance is invalid (400 naming each instance and field). The
    API's rows go to the prediction log's queue (with `gate`: in the same atomic Redis call that
    counts the key's rate limit and checks its cache, see KeyGate); rows with review items, or
    when the queue is off, are written here in one transaction, as one bulk INSERT.
    """
    started = started if started is not None else time.perf_counter()
    _refuse_request(deployment, instances)
    version = version_cached(deployment.model_version_id)
    validator = _validator(deployment, version)
    columns, errors = validator.validate(instances)
    if errors:
        error_count(deployment=deployment, kind="validation")
        first_key = next(iter(errors))
        first_msgs = next(iter(errors[first_key].values()))
        raise InvalidInput(f"{len(errors)} invalid instance(s); {first_key}: {first_msgs[0]}", errors=errors)
    # The decision threshold is read from the deployment the request holds: a change saves the
    # deployment, which bumps the serving generation and drops every process's cached copy.
    decide = {
        "task_type": version.task_type,
        "classes": version.classes,
        "threshold": deployment.active_threshold,
        "positive": version.positive_class,
    }
    try:
        model = model_for(version)
        compiled = (
            fastpath.compiled_for(version, model, validator)
            if settings.SERVING_COMPILED and len(instances) <= fastpath.MAX_ROWS
            else None
        )
        if compiled is not None:
            scored = scoring.score(compiled, validator.arrays(columns), **decide)
        else:
            scored = scoring.score(model, validator.frame(columns), **decide)
    except Exception:
        error_count(deployment=deployment, kind="server")
        raise
    return _log_and_shape(
        deployment=deployment,
        version=version,
        instances=instances,
        scored=scored,
        caller=caller,
        source=source,
        started=started,
        frame=lambda: validator.frame(columns),
        gate=gate,
        columns=columns,
    )


@dataclass
class _Call:
    """What one predict call logs: the deployment and version, who asked, when and how fast."""

    deployment: Deployment
    version: ModelVersion
    caller: str
    source: str
    latency_ms: float | None
    now: datetime
    threshold: float | None = None


def _log_and_shape(
    *, deployment, version, instances, scored, caller, source, started, frame, gate, columns=None
) -> PredictResult:
    plan = review_services.review_plan(
        deployment=deployment,
        labels=scored.labels,
        confidences=scored.confidences,
        model_version_id=version.pk,
        columns=columns,
    )
    hold = deployment.review_mode == ReviewMode.HOLD
    out: list[dict[str, Any]] = []
    for i in range(len(instances)):
        status = PredictionStatus.PENDING_REVIEW if (plan[i] is not None and hold) else PredictionStatus.ACCEPTED
        out.append(
            {
                "id": str(uuid7()),
                "prediction": scored.labels[i],
                "confidence": scored.confidences[i],
                "probabilities": scored.probabilities[i],
                "interval": None,
                "status": status.value,
            }
        )
    if settings.PREDICTION_LOGGING:
        latency = (time.perf_counter() - started) * 1000
        call = _Call(deployment, version, caller, source, latency, timezone.now(), scored.threshold)
        reviewed = any(r is not None for r in plan)
        # The API's calls go through the queue (no transaction in the request); a call with
        # predictions to review writes them here, so that the answer can name its review items.
        encoded = (
            _encode_rows(call, instances, out)
            if source == "api" and not reviewed and prediction_log.enabled()
            else None
        )
        if gate is not None:
            gate.admit(encoded or [])  # raises Stale / RateLimited: nothing logged
            queued = bool(encoded)
        else:
            queued = bool(encoded) and prediction_log.push(encoded)
        if not queued:
            _write_rows(call, instances, out, plan)
    elif gate is not None:
        gate.admit([])
    if deployment.shadow_model_version_id and source == "api":
        _shadow(deployment=deployment, instances=instances, X=frame(), caller=caller)
    return PredictResult(model_version=version.version, predictions=out)


def _rows(call: _Call, instances: list[Any], out: list[dict[str, Any]], created_at: Any) -> list[dict[str, Any]]:
    return [
        logged_prediction(
            id=o["id"],
            project_id=call.deployment.project_id,
            deployment_id=call.deployment.pk,
            model_version_id=call.version.pk,
            source=call.source,
            inputs=inst,
            prediction=o["prediction"],
            confidence=o["confidence"],
            probabilities=o["probabilities"],
            status=o["status"],
            caller=call.caller,
            latency_ms=call.latency_ms,
            created_at=created_at,
            decision_threshold=call.threshold,
        )
        for inst, o in zip(instances, out, strict=True)
    ]


def _encode_rows(call: _Call, instances: list[Any], out: list[dict[str, Any]]) -> list[str] | None:
    """The rows as the prediction log's queue takes them; None when one cannot go through it."""
    encoded: list[str] = []
    for row in _rows(call, instances, out, call.now.isoformat()):
        text = prediction_log.encode(row)
        if text is None:
            return None
        encoded.append(text)
    return encoded


def _write_rows(call: _Call, instances: list[Any], out: list[dict[str, Any]], plan: list[Any]) -> None:
    """Write the rows (and their review items) in this request: one transaction, one bulk INSERT."""
    rows = [Prediction(**(row | {"id": uuid.UUID(row["id"])})) for row in _rows(call, instances, out, call.now)]
    with transaction.atomic():
        if not settings.PREDICTION_LOG_SYNC_COMMIT and connection.vendor == "postgresql":
            # The commit returns without waiting for the WAL flush (about 4 ms on this disk,
            # more than the model): the rows are committed and visible, and only a crash of
            # the PostgreSQL server itself could drop the last fraction of a second of them.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        Prediction.objects.bulk_create(rows)
        items = review_services.review_items_create(deployment=call.deployment, predictions=rows, plan=plan)
    by_prediction = {str(item.prediction_id): item.pk for item in items}
    for o in out:
        rid = by_prediction.get(o["id"])
        if rid is not None:
            o["review_id"] = rid


def _shadow(*, deployment: Deployment, instances: list[Any], X: Any, caller: str) -> None:
    """Score the challenger on the same rows and log its predictions (source="shadow"); never fails the call."""
    try:
        shadow = version_cached(deployment.shadow_model_version_id)
        if [f["name"] for f in shadow.input_schema] != list(X.columns):
            return
        scored = scoring.score(model_for(shadow), X, task_type=shadow.task_type, classes=shadow.classes)
        if not settings.PREDICTION_LOGGING:
            return
        out = [
            {
                "id": str(uuid7()),
                "prediction": scored.labels[i],
                "confidence": scored.confidences[i],
                "probabilities": scored.probabilities[i],
                "status": PredictionStatus.ACCEPTED.value,
            }
            for i in range(len(instances))
        ]
        call = _Call(deployment, shadow, caller, "shadow", None, timezone.now())
        encoded = _encode_rows(call, instances, out) if prediction_log.enabled() else None
        queued = bool(encoded) and prediction_log.push(encoded)
        if not queued:
            _write_rows(call, instances, out, [None] * len(out))
    except Exception:  # noqa: BLE001 - the challenger must never break the champion's answer
        error_count(deployment=deployment, kind="shadow")
