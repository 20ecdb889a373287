"""Writes of the deployments app: deployments, versions, keys, predictions, batch jobs."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.keys import hash_key, new_key
from deployments import fastpath, prediction_log, review_routing, serving
from deployments.models import (
    ApiKey,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    ModelVersion,
    Prediction,
    PredictionErrorCount,
    PredictionStatus,
    ReviewMode,
    uuid7,
)
from deployments.registry import GateResult, gate_check, model_for
from mlplatform.errors import Conflict, InvalidInput, PayloadTooLarge, PermissionDenied, Unavailable
from projects.access import can
from projects.models import Project
from projects.roles import Action
from projects.services import audit_record
from projects.webhooks import project_event

UNKNOWN_POLICIES = ("error", "allow")
logger = logging.getLogger(__name__)


# --- deployments and their versions ----------------------------------------------------------


def _gate_or_override(
    *, project: Project, model_version: ModelVersion, actor: Any, justification: str
) -> tuple[GateResult, dict | None]:
    gate = gate_check(model_version, project)
    if gate.passed:
        return gate, None
    justification = (justification or "").strip()
    if not justification:
        raise Conflict(
            "This version does not pass the promotion gate: " + " ".join(gate.reasons),
            errors={"model_version": gate.reasons},
        )
    if not can(actor, project, Action.OVERRIDE_GATE):
        raise PermissionDenied("Only a project owner can override the promotion gate.")
    if len(justification) < 20:
        raise InvalidInput("Write a justification of at least 20 characters.", field="justification")
    override = {
        "by": actor.get_username(),
        "at": timezone.now().isoformat(),
        "justification": justification,
        "gate": gate.as_dict(),
        "version": model_version.version,
    }
    return gate, override


def deployment_create(
    *,
    project: Project,
    actor: Any,
    name: str,
    model_version: ModelVersion,
    review_threshold: float | None = None,
    unknown_category_policy: str = "error",
    allow_missing: bool = True,
    max_instances: int | None = None,
    justification: str = "",
) -> Deployment:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the deployment a name.", field="name")
    if unknown_category_policy not in UNKNOWN_POLICIES:
        raise InvalidInput("Choose error or allow.", field="unknown_category_policy")
    if review_threshold is not None and not 0 <= review_threshold <= 1:
        raise InvalidInput("The review threshold is a confidence between 0 and 1.", field="review_threshold")
    if max_instances is not None and not 1 <= max_instances <= settings.PREDICT_MAX_INSTANCES:
        raise InvalidInput(f"Between 1 and {settings.PREDICT_MAX_INSTANCES}.", field="max_instances")
    if model_version.project_id != project.pk:
        raise InvalidInput("No such model version in this project.", field="model_version")
    if Deployment.objects.filter(project=project, name=name).exists():
        raise Conflict(f"A deployment named “{name}” already exists.", field="name")
    gate, override = _gate_or_override(
        project=project, model_version=model_version, actor=actor, justification=justification
    )
    with transaction.atomic():
        deployment = Deployment.objects.create(
            project=project,
            name=name,
            model_version=model_version,
            review_threshold=review_threshold,
            unknown_category_policy=unknown_category_policy,
            allow_missing=allow_missing,
            max_instances=max_instances,
            gate_override=override,
            created_by=actor,
        )
        DeploymentChange.objects.create(
            project=project,
            deployment=deployment,
            action="deploy",
            to_version=model_version,
            reason=override["justification"] if override else "",
            gate=gate.as_dict(),
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="deployment.created",
            project=project,
            obj=deployment,
            data={"version": model_version.version, "gate": gate.as_dict()},
        )
        _events(
            project=project,
            deployment=deployment,
            event="deployment.deployed",
            version=model_version,
            override=override,
        )
    return deployment


def _events(*, project, deployment, event, version, override=None, extra=None) -> None:
    payload = {
        "deployment": {"id": deployment.pk, "name": deployment.name},
        "model_version": {"id": version.pk, "version": version.version},
        **(extra or {}),
    }
    project_event(project=project, event=event, payload=payload)
    if override:
        audit_record(
            actor=None,
            action="gate.overridden",
            project=project,
            obj=deployment,
            data=override,
            actor_label=override["by"],
        )
        project_event(project=project, event="gate.overridden", payload={**payload, "override": override})


def deployment_promote(
    *, deployment: Deployment, actor: Any, model_version: ModelVersion, reason: str = "", justification: str = ""
) -> Deployment:
    """Point the deployment at another version (gated, like a new deployment)."""
    project = deployment.project
    if model_version.project_id != project.pk:
        raise InvalidInput("No such model version in this project.", field="model_version")
    if model_version.pk == deployment.model_version_id:
        raise Conflict("This version is already the active one.", field="model_version")
    gate, override = _gate_or_override(
        project=project, model_version=model_version, actor=actor, justification=justification
    )
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        previous = d.model_version
        d.model_version = model_version
        if override:
            d.gate_override = override
        elif d.gate_override:
            d.gate_override = None
        d.save(update_fields=["model_version", "gate_override", "updated_at"])
        DeploymentChange.objects.create(
            project=project,
            deployment=d,
            action="promote",
            from_version=previous,
            to_version=model_version,
            reason=(reason or "").strip() or (override or {}).get("justification", ""),
            gate=gate.as_dict(),
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="deployment.promoted",
            project=project,
            obj=d,
            data={"from": previous.version, "to": model_version.version, "reason": reason},
        )
        _events(project=project, deployment=d, event="deployment.deployed", version=model_version, override=override)
    return d


UPDATABLE = ("unknown_category_policy", "allow_missing", "max_instances", "review_threshold", "review_mode")


def deployment_update(*, deployment: Deployment, actor: Any, **changes: Any) -> Deployment:
    """Change a deployment's serving policy (validation, review threshold and mode); audited."""
    unknown = [k for k in changes if k not in UPDATABLE]
    if unknown:
        raise InvalidInput(f"This field cannot be changed here: {unknown[0]}.", field=unknown[0])
    if "unknown_category_policy" in changes and changes["unknown_category_policy"] not in UNKNOWN_POLICIES:
        raise InvalidInput("Choose error or allow.", field="unknown_category_policy")
    t = changes.get("review_threshold")
    if t is not None and not 0 <= t <= 1:
        raise InvalidInput("The review threshold is a confidence between 0 and 1.", field="review_threshold")
    m = changes.get("max_instances")
    if m is not None and not 1 <= m <= settings.PREDICT_MAX_INSTANCES:
        raise InvalidInput(f"Between 1 and {settings.PREDICT_MAX_INSTANCES}.", field="max_instances")
    if "review_mode" in changes and changes["review_mode"] not in ReviewMode.values:
        raise InvalidInput("Choose hold or flag.", field="review_mode")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        before = {k: getattr(d, k) for k in changes}
        for k, v in changes.items():
            setattr(d, k, v)
        d.save(update_fields=[*changes, "updated_at"])
        audit_record(
            actor=actor,
            action="deployment.updated",
            project=d.project,
            obj=d,
            data={"before": before, "after": changes},
        )
    return d


def previous_version(deployment: Deployment) -> ModelVersion | None:
    """The version that was active before the current one (the last version change's origin)."""
    change = (
        deployment.changes.filter(action__in=("deploy", "promote", "rollback"), to_version=deployment.model_version_id)
        .select_related("from_version")
        .first()
    )
    return change.from_version if change else None


def deployment_rollback(*, deployment: Deployment, actor: Any, reason: str = "") -> Deployment:
    """Back to the previous version in one step. Not gated: that version was deployed before."""
    project = deployment.project
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        target = previous_version(d)
        if target is None:
            raise Conflict("There is no previous version to roll back to.", field="deployment")
        current = d.model_version
        d.model_version = target
        d.save(update_fields=["model_version", "updated_at"])
        DeploymentChange.objects.create(
            project=project,
            deployment=d,
            action="rollback",
            from_version=current,
            to_version=target,
            reason=(reason or "").strip(),
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="deployment.rolled_back",
            project=project,
            obj=d,
            data={"from": current.version, "to": target.version, "reason": reason},
        )
        _events(
            project=project,
            deployment=d,
            event="deployment.rolled_back",
            version=target,
            extra={"from_version": {"id": current.pk, "version": current.version}, "reason": reason},
        )
    return d


def deployment_set_status(*, deployment: Deployment, actor: Any, status: str, reason: str = "") -> Deployment:
    if status not in DeploymentStatus.values:
        raise InvalidInput("Choose active or paused.", field="status")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if d.status == status:
            return d
        d.status = status
        d.save(update_fields=["status", "updated_at"])
        action = "pause" if status == DeploymentStatus.PAUSED else "resume"
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action=action,
            from_version=d.model_version,
            to_version=d.model_version,
            reason=(reason or "").strip(),
            actor=actor,
        )
        audit_record(actor=actor, action=f"deployment.{action}d", project=d.project, obj=d, data={"reason": reason})
    return d


def deployment_set_shadow(*, deployment: Deployment, actor: Any, model_version: ModelVersion | None) -> Deployment:
    """A challenger that receives a copy of live traffic; its predictions are logged, not returned."""
    if model_version is not None and model_version.project_id != deployment.project_id:
        raise InvalidInput("No such model version in this project.", field="shadow_model_version")
    if model_version is not None and model_version.pk == deployment.model_version_id:
        raise InvalidInput("The shadow must differ from the active version.", field="shadow_model_version")
    with transaction.atomic():
        d = Deployment.objects.select_for_update().get(pk=deployment.pk)
        d.shadow_model_version = model_version
        d.save(update_fields=["shadow_model_version", "updated_at"])
        DeploymentChange.objects.create(
            project=d.project,
            deployment=d,
            action="shadow",
            from_version=d.model_version,
            to_version=model_version,
            actor=actor,
        )
        audit_record(
            actor=actor,
            action="deployment.shadow_set",
            project=d.project,
            obj=d,
            data={"shadow": model_version.version if model_version else None},
        )
    return d


# --- API keys -------------------------------------------------------------------------------------


def api_key_create(
    *, deployment: Deployment, actor: Any, name: str, rate_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """A new key for one deployment. The clear key is returned once and never stored."""
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
            rate_per_minute=rate_per_minute or 6000,
            created_by=actor,
        )
        audit_record(
            actor=actor, action="api_key.created", project=deployment.project, obj=api_key, data={"name": name}
        )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, actor: Any) -> ApiKey:
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            serving_changed()  # an update() sends no post_save: the web processes must drop the key now
            audit_record(
                actor=actor, action="api_key.revoked", project=api_key.project, obj=api_key, data={"name": api_key.name}
            )
    api_key.refresh_from_db()
    return api_key


SERVING_GENERATION = "{mlp}:serving:generation"


class Stale(Exception):
    """The cached key or its deployment changed since this request read them: authenticate again."""


class RateLimited(Exception):
    def __init__(self, retry_after: int, limit: int):
        super().__init__(f"Rate limit of {limit} requests per minute reached.")
        self.retry_after = retry_after


# Count the call in its key's minute, check that no deployment or key changed since the caller
# read them (the serving generation), and only then queue its prediction rows: one atomic call.
_ADMIT_LUA = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 120)
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {count, -1} end
if count > tonumber(ARGV[2]) then return {count, 0} end
if #ARGV > 2 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 3)) end
return {count, 1}
"""


@dataclass
class KeyGate:
    """An API key read from this process's cache (or the database) at a known serving generation."""

    api_key: ApiKey
    generation: bytes

    def admit(self, encoded: list[str]) -> None:
        """Count the call, check the key and deployment are unchanged, queue `encoded`: one round trip.

        Raises Stale (changed, or Redis unreachable: authenticate again, from the database) or
        RateLimited. When it returns, the rows are in the prediction log's queue.
        """
        now = time.time()
        try:
            _count, verdict = _redis().eval(
                _ADMIT_LUA,
                3,
                _rate_key(self.api_key.pk, int(now // 60)),
                SERVING_GENERATION,
                prediction_log.QUEUE,
                self.generation,
                self.api_key.rate_per_minute,
                *encoded,
            )
        except Exception as exc:  # Redis away: the caller starts over without the cache
            raise Stale from exc
        if verdict == -1:
            raise Stale
        if verdict == 0:
            raise RateLimited(max(1, 60 - int(now % 60)), self.api_key.rate_per_minute)
        if encoded:
            prediction_log.pushed(encoded)

    def fresh(self) -> bool:
        """Is what the request read still current? (Checked before refusing a call.)"""
        try:
            return _redis().get(SERVING_GENERATION) == self.generation
        except Exception:  # noqa: BLE001 - cannot tell: the caller starts over from the database
            return False


@dataclass
class KeyAuth:
    """An authenticated API key; `gate` when Redis serves it (the cache, the rate limit, the queue)."""

    api_key: ApiKey
    digest: str
    gate: KeyGate | None = None


_keys: dict[str, tuple[ApiKey, bytes, float]] = {}  # key hash -> (key with its deployment, generation, when)


def api_key_authenticate(key: str) -> KeyAuth | None:
    """The live key for this clear text, or None. Fast: one SHA-256, and no query when cached.

    Each process keeps the keys it has seen, with their deployment, for SERVING_KEY_CACHE_SECONDS,
    with the serving generation they were read at. Nothing is asked of Redis here: the call's
    `KeyGate.admit`, made once the answer is ready, checks that generation in the same atomic
    call that counts the rate limit and queues the prediction rows. Any change of a deployment
    or key anywhere (`serving_changed`) bumps it, so a revoked key gets 401 and a paused
    deployment 503 on the next call. Without Redis: no cache, one indexed query per request.
    """
    return api_key_for_digest(hash_key(key))


def api_key_for_digest(digest: str, *, cached: bool = True) -> KeyAuth | None:
    client = _redis()
    ttl = settings.SERVING_KEY_CACHE_SECONDS
    use_cache = client is not None and ttl > 0
    hit = _keys.get(digest) if use_cache and cached else None
    if hit is not None and time.monotonic() - hit[2] < ttl:
        _touch(hit[0])
        return KeyAuth(hit[0], digest, KeyGate(hit[0], hit[1]))
    generation = _generation(client) if use_cache else None
    rows = ApiKey.objects.select_related("deployment").filter(key_hash=digest, revoked_at__isnull=True)
    api_key = next(iter(rows.order_by()[:1]), None)
    if api_key is None:
        _keys.pop(digest, None)
        return None
    _touch(api_key)
    if generation is None:
        return KeyAuth(api_key, digest)
    if len(_keys) > 10_000:
        _keys.clear()
    _keys[digest] = (api_key, generation, time.monotonic())
    return KeyAuth(api_key, digest, KeyGate(api_key, generation))


def with_api_key(found: KeyAuth, work: Callable[[KeyAuth], Any]) -> Any:
    """Run `work` for a key read from this process's cache; when it turns out a deployment or key
    changed meanwhile (Stale, or a refusal made while the generation moved), start over from the
    database. Keys without a gate (no Redis) are checked once, against the database."""
    from rest_framework.exceptions import AuthenticationFailed

    for _ in range(3):
        try:
            return work(found)
        except Stale:
            pass
        except Exception:
            if found.gate is None or found.gate.fresh():
                raise  # a refusal (400, 413, 429, 503...) made on current facts
        found = api_key_for_digest(found.digest, cached=False)
        if found is None:
            raise AuthenticationFailed("Invalid or revoked API key.") from None
    raise Unavailable("The deployment is being changed; try again in a moment.")


def key_rate_limit(api_key: ApiKey) -> None:
    """The rate limit of a key without a gate (no Redis): RateLimited when over its budget."""
    retry_after = rate_limit_hit(api_key=api_key)
    if retry_after is not None:
        raise RateLimited(retry_after, api_key.rate_per_minute)


def api_key_admit(found: KeyAuth) -> ApiKey:
    """Admit a call that logs no prediction (feedback): the key must still be live (the cache is
    checked against the generation, or the database asked again) and within its rate limit."""
    from rest_framework.exceptions import Throttled

    def admit(current: KeyAuth) -> ApiKey:
        if current.gate is not None:
            current.gate.admit([])
        else:
            key_rate_limit(current.api_key)
        return current.api_key

    try:
        return with_api_key(found, admit)
    except RateLimited as exc:
        raise Throttled(wait=exc.retry_after, detail=str(exc)) from None


def _touch(api_key: ApiKey) -> None:
    """Record the last use at most once a minute: no write per request on the hot path."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def _rate_key(api_key_id: int, window: int) -> str:
    return f"{{mlp}}:rate:{api_key_id}:{window}"


def _generation(client) -> bytes | None:
    """The current serving generation (created when Redis has none, e.g. after a restart)."""
    try:
        value = client.get(SERVING_GENERATION)
        if value is None:
            client.set(SERVING_GENERATION, os.urandom(8).hex(), nx=True)
            value = client.get(SERVING_GENERATION)
        return value
    except Exception:  # noqa: BLE001 - Redis away: no cache
        return None


def serving_changed() -> None:
    """A deployment or API key changed: every process drops its serving cache (now, and after commit)."""
    _keys.clear()

    def bump() -> None:
        client = _redis()
        if client is not None:
            try:
                client.set(SERVING_GENERATION, os.urandom(8).hex())
            except Exception:  # Redis away: the caches are not used either
                logger.warning("could not bump the serving generation", exc_info=True)

    bump()
    transaction.on_commit(bump)


_versions: dict[int, ModelVersion] = {}


def version_cached(version_id: int) -> ModelVersion:
    """A model version for serving, without its large JSON (drift reference, card, lineage).

    Versions are immutable once registered, so each process reads one at most once; a
    deployment that switches version simply asks for another id.
    """
    version = _versions.get(version_id)
    if version is None:
        version = ModelVersion.objects.defer("reference_stats", "model_card", "lineage").get(pk=version_id)
        if len(_versions) > 64:
            _versions.clear()
        _versions[version_id] = version
    return version


# --- rate limit -------------------------------------------------------------------------------------

_redis_client = None
_redis_lock = threading.Lock()


def _redis():
    global _redis_client
    if _redis_client is None and settings.REDIS_URL:
        with _redis_lock:
            if _redis_client is None:
                import redis

                _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
    return _redis_client


_local_counts: dict[tuple[int, int], int] = {}


def rate_limit_hit(*, api_key: ApiKey) -> int | None:
    """Count one request; returns the seconds to wait when over the key's per-minute budget.

    Fixed one-minute windows in Redis (shared by every worker process); without Redis (the
    embedded mode), a per-process counter. (Calls with a `KeyGate` are counted by its admit.)
    """
    now = time.time()
    window = int(now // 60)
    retry_after = max(1, 60 - int(now % 60))
    client = _redis()
    count: int | None = None
    if client is not None:
        key = _rate_key(api_key.pk, window)
        try:
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)
            count = pipe.execute()[0]
        except Exception:  # noqa: BLE001 - Redis down: do not turn the model off, fall back locally
            count = _local_incr(api_key.pk, window)
    else:
        count = _local_incr(api_key.pk, window)
    return retry_after if count > api_key.rate_per_minute else None


def _local_incr(key_id: int, window: int) -> int:
    k = (key_id, window)
    _local_counts[k] = _local_counts.get(k, 0) + 1
    if len(_local_counts) > 10_000:
        _local_counts.clear()
    return _local_counts[k]


# --- error counters ----------------------------------------------------------------------------------


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


# --- predictions ----------------------------------------------------------------------------------


@dataclass
class PredictResult:
    model_version: int
    predictions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "predictions": self.predictions}


def _validator(deployment: Deployment, version: ModelVersion) -> serving.Validator:
    return serving.validator_cached(
        key=(version.pk, version.sha256),
        schema=version.input_schema,
        unknown_policy=deployment.unknown_category_policy,
        allow_missing=deployment.allow_missing,
    )


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
    version = version_cached(deployment.model_version_id)
    validator = _validator(deployment, version)
    columns, errors = validator.validate(instances)
    if errors:
        error_count(deployment=deployment, kind="validation")
        first_key = next(iter(errors))
        first_msgs = next(iter(errors[first_key].values()))
        raise InvalidInput(f"{len(errors)} invalid instance(s); {first_key}: {first_msgs[0]}", errors=errors)
    try:
        model = model_for(version)
        compiled = (
            fastpath.compiled_for(version, model, validator)
            if settings.SERVING_COMPILED and len(instances) <= fastpath.MAX_ROWS
            else None
        )
        if compiled is not None:
            scored = serving.score(
                compiled, validator.arrays(columns), task_type=version.task_type, classes=version.classes
            )
        else:
            scored = serving.score(
                model, validator.frame(columns), task_type=version.task_type, classes=version.classes
            )
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
    )


def _log_and_shape(*, deployment, version, instances, scored, caller, source, started, frame, gate) -> PredictResult:
    plan = review_routing.review_plan(deployment=deployment, labels=scored.labels, confidences=scored.confidences)
    hold = deployment.review_mode == ReviewMode.HOLD
    now = timezone.now()
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
        reviewed = any(r is not None for r in plan)
        # The API's calls go through the queue (no transaction in the request); a call with
        # predictions to review writes them here, so that the answer can name its review items.
        encoded = (
            _encode_rows(deployment, version, instances, out, caller, source, latency, now)
            if source == "api" and not reviewed and prediction_log.enabled()
            else None
        )
        if gate is not None:
            gate.admit(encoded or [])  # raises Stale / RateLimited: nothing logged
            queued = bool(encoded)
        else:
            queued = bool(encoded) and prediction_log.push(encoded)
        if not queued:
            _write_rows(deployment, version, instances, out, caller, source, latency, now, plan)
    elif gate is not None:
        gate.admit([])
    if deployment.shadow_model_version_id and source == "api":
        _shadow(deployment=deployment, instances=instances, X=frame(), caller=caller)
    return PredictResult(model_version=version.version, predictions=out)


def _encode_rows(deployment, version, instances, out, caller, source, latency, now) -> list[str] | None:
    """The rows as the prediction log's queue takes them; None when one cannot go through it."""
    created = now.isoformat()
    encoded: list[str] = []
    for inst, o in zip(instances, out, strict=True):
        text = prediction_log.encode(
            {
                "id": o["id"],
                "project_id": deployment.project_id,
                "deployment_id": deployment.pk,
                "model_version_id": version.pk,
                "source": source,
                "inputs": inst,
                "prediction": o["prediction"],
                "confidence": o["confidence"],
                "probabilities": o["probabilities"],
                "status": o["status"],
                "caller": caller[:120],
                "latency_ms": latency,
                "created_at": created,
            }
        )
        if text is None:
            return None
        encoded.append(text)
    return encoded


def _write_rows(deployment, version, instances, out, caller, source, latency, now, plan) -> None:
    """Write the rows (and their review items) in this request: one transaction, one bulk INSERT."""
    rows = [
        Prediction(
            id=_uuid(o["id"]),
            project_id=deployment.project_id,
            deployment_id=deployment.pk,
            model_version_id=version.pk,
            source=source,
            inputs=inst,
            prediction=o["prediction"],
            confidence=o["confidence"],
            probabilities=o["probabilities"],
            status=o["status"],
            caller=caller[:120],
            latency_ms=latency,
            created_at=now,
        )
        for inst, o in zip(instances, out, strict=True)
    ]
    with transaction.atomic():
        if not settings.PREDICTION_LOG_SYNC_COMMIT and connection.vendor == "postgresql":
            # The commit returns without waiting for the WAL flush (about 4 ms on this disk,
            # more than the model): the rows are committed and visible, and only a crash of
            # the PostgreSQL server itself could drop the last fraction of a second of them.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        Prediction.objects.bulk_create(rows)
        items = review_routing.review_items_create(deployment=deployment, predictions=rows, plan=plan)
    by_prediction = {str(item.prediction_id): item.pk for item in items}
    for o in out:
        rid = by_prediction.get(o["id"])
        if rid is not None:
            o["review_id"] = rid


def _uuid(s: str):
    import uuid

    return uuid.UUID(s)


def _shadow(*, deployment: Deployment, instances, X, caller: str) -> None:
    """Score the challenger on the same rows and log its predictions (source="shadow"); never fails the call."""
    try:
        shadow = version_cached(deployment.shadow_model_version_id)
        if [f["name"] for f in shadow.input_schema] != list(X.columns):
            return
        scored = serving.score(model_for(shadow), X, task_type=shadow.task_type, classes=shadow.classes)
        if not settings.PREDICTION_LOGGING:
            return
        now = timezone.now()
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
        encoded = (
            _encode_rows(deployment, shadow, instances, out, caller, "shadow", None, now)
            if prediction_log.enabled()
            else None
        )
        queued = bool(encoded) and prediction_log.push(encoded)
        if not queued:
            _write_rows(deployment, shadow, instances, out, caller, "shadow", None, now, [None] * len(out))
    except Exception:  # noqa: BLE001 - the challenger must never break the champion's answer
        error_count(deployment=deployment, kind="shadow")


# --- feedback ---------------------------------------------------------------------------------------


def minute_floor(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


# --- batch inference ---------------------------------------------------------------------------------


def _sniff_format(upload: Any) -> str:
    head = upload.read(4)
    upload.seek(0)
    name = (getattr(upload, "name", "") or "").lower()
    if head == b"PAR1":
        return "parquet"
    if name.endswith((".parquet", ".pq")):
        raise InvalidInput("The file is not a valid Parquet file.", field="file")
    return "csv"


def batch_start(
    *,
    deployment: Deployment,
    actor: Any,
    upload: Any = None,
    dataset_version: Any = None,
    output_format: str = "csv",
    log_predictions: bool = True,
):
    """Start a batch inference job over an uploaded CSV / Parquet file or a dataset version."""
    from jobs.runner import job_enqueue
    from mlplatform.artifacts import bytes_save  # noqa: F401 - keys are generated like bytes_save's

    if output_format not in ("csv", "parquet"):
        raise InvalidInput("Choose csv or parquet.", field="output_format")
    if (upload is None) == (dataset_version is None):
        raise InvalidInput("Send either a file or a dataset version.", field="file")
    if deployment.status != DeploymentStatus.ACTIVE:
        raise Unavailable(f"The deployment “{deployment.name}” is paused.")
    params: dict[str, Any] = {
        "deployment_id": deployment.pk,
        "model_version_id": deployment.model_version_id,
        "output_format": output_format,
        "log_predictions": bool(log_predictions),
    }
    if upload is not None:
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"The file is larger than {settings.MAX_UPLOAD_BYTES:,} bytes.", field="file")
        if upload.size == 0:
            raise InvalidInput("The file is empty.", field="file")
        fmt = _sniff_format(upload)
        import uuid

        from django.core.files.storage import default_storage

        key = default_storage.save(f"projects/{deployment.project_id}/batch-inputs/{uuid.uuid4().hex}.{fmt}", upload)
        params.update(input_key=key, input_format=fmt)
    else:
        if dataset_version.project_id != deployment.project_id:
            raise InvalidInput("No such dataset version in this project.", field="dataset_version")
        if not dataset_version.storage_key:
            raise InvalidInput("This dataset version has no data yet.", field="dataset_version")
        params["dataset_version_id"] = dataset_version.pk
    with transaction.atomic():
        job = job_enqueue(
            project=deployment.project,
            kind="deployment.batch",
            created_by=actor,
            params=params,
            target=deployment,
            message="Batch inference waiting for a worker",
        )
        audit_record(
            actor=actor,
            action="deployment.batch_started",
            project=deployment.project,
            obj=deployment,
            data={"job": job.pk, "format": output_format},
        )
    return job
