"""The registry's writes: the one function that creates model versions, the registration of an
evaluated run, and the preparation job that builds a version's input schema and drift reference.

A version comes to exist in one way, `model_version_create` (the API's registration and the
monitoring retrain both call `model_version_register`, which calls it): under a lock on the
project row it takes the next number, writes the row with its model card, records the audit
event, announces `model.registered` and queues `model_version.prepare`. The request reads no
training data: the job does, and the version can be deployed once it has finished
(`reference_status` ready).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from deployments.events import model_registered_event
from deployments.ml.reference import reference_build
from deployments.ml.schema import schema_infer
from deployments.ml.scoring import score_arrays
from deployments.models import ModelVersion, ReferenceStatus
from deployments.registry.model_card import model_card, with_schema
from jobs.runner import job_enqueue
from jobs.webhooks import project_event
from mlplatform.artifacts import bytes_save, model_load
from mlplatform.errors import Conflict, Gone, InvalidInput
from projects.models import Project

REFERENCE_MAX_ROWS = 200_000  # training rows kept as the drift reference (a bounded sample)
PREPARE_JOB = "model_version.prepare"


@dataclass
class NewVersion:
    """What a model version is made of, whichever path made it."""

    experiment: Any
    run: Any
    dataset_version: Any
    name: str
    classes: list[Any]
    positive_class: Any
    artifact_key: str
    sha256: str
    size_bytes: int
    features: list[str]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    card: dict[str, Any]
    origin: dict[str, Any] = field(default_factory=dict)  # the audit event's data


def model_version_create(*, project: Project, actor: Any, spec: NewVersion) -> ModelVersion:
    """Create the project's next model version and queue its preparation. The only writer of
    ModelVersion rows: numbered under the project row's lock, so two creations at once (a
    registration and a retrain) take consecutive numbers instead of colliding."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        if spec.run is not None and ModelVersion.objects.filter(run=spec.run).exists():
            raise Conflict("This run was registered meanwhile.", field="run")
        number = (ModelVersion.objects.filter(project=project).aggregate(m=Max("version"))["m"] or 0) + 1
        version = ModelVersion.objects.create(
            project=project,
            version=number,
            run=spec.run,
            experiment=spec.experiment,
            dataset_version=spec.dataset_version,
            name=spec.name[:120],
            task_type=spec.experiment.task_type,
            target=spec.experiment.target,
            classes=spec.classes,
            positive_class=spec.positive_class,
            artifact_key=spec.artifact_key,
            sha256=spec.sha256,
            size_bytes=spec.size_bytes,
            input_schema=[],
            metrics=spec.metrics,
            lineage=spec.lineage,
            model_card=spec.card,
            reference_status=ReferenceStatus.PENDING,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        model_registered_event(actor=actor, version=version, origin=spec.origin)
        project_event(
            project=project,
            event="model.registered",
            payload={
                "model_version": {"id": version.pk, "version": number, "metrics": spec.metrics, "run": spec.run.pk}
            },
        )
        # Kept on the instance for the caller: the API answers 202 with this job to wait on.
        version.prepare_job = job_enqueue(
            project=project,
            kind=PREPARE_JOB,
            created_by=actor,
            params={"model_version_id": version.pk, "features": spec.features},
            target=version,
            message="Building the input schema and drift reference",
        )
    return version


def _checked_run(run: Any) -> tuple[dict[str, Any], list[str]]:
    """The run's final evaluation and feature columns, or InvalidInput / Conflict saying why not."""
    experiment = run.experiment
    if experiment.evaluated_run_id != run.pk or not experiment.test_evaluation:
        raise InvalidInput("Only the run chosen by the experiment's final evaluation can be registered.", field="run")
    if not run.final_artifact_key or not run.final_artifact_sha256:
        raise InvalidInput("This run has no final model file (refit on train + validation) yet.", field="run")
    existing = ModelVersion.objects.filter(run=run).first()
    if existing is not None:
        raise Conflict(f"This run is already registered as version {existing.version}.", field="run")
    test = experiment.test_evaluation
    features = list(test.get("feature_columns") or [])
    if not features:
        raise InvalidInput("The final evaluation does not list the feature columns.", field="run")
    known = {c.get("name") for c in (experiment.dataset_version.schema or [])}
    missing = [c for c in features if known and c not in known]
    if missing:
        raise InvalidInput(f"Feature columns missing from the dataset version: {missing}.", field="run")
    return test, features


def model_version_register(*, run: Any, actor: Any, lineage_extra: dict[str, Any] | None = None) -> ModelVersion:
    """Register a run's final (train + validation) pipeline as the project's next model version.

    Only the run chosen by its experiment's final evaluation can be registered, once. Nothing
    here reads the training rows: the version's preparation job does (see the module docstring).
    `lineage_extra` records where a retrained version comes from.
    """
    test, features = _checked_run(run)
    experiment = run.experiment
    dv = experiment.dataset_version
    project = run.project
    try:
        size = default_storage.size(run.final_artifact_key)
    except (OSError, NotImplementedError):
        size = run.model_size_bytes or 0
    metrics = {
        "metric": test.get("metric") or experiment.metric,
        "cv": run.cv_metrics,
        "test": test.get("metrics") or {},
        "n_test": test.get("n_test"),
        "verdict": test.get("verdict"),
        "calibration": test.get("calibration"),
    }
    lineage = {
        "experiment": {"id": experiment.pk, "name": experiment.name},
        "run": {"id": run.pk, "algorithm": run.algorithm, "params": run.params},
        "dataset": {"id": dv.dataset_id, "name": dv.dataset.name},
        "dataset_version": {"id": dv.pk, "number": dv.number, "content_hash": getattr(dv, "content_hash", "")},
        "recipe": experiment.recipe_steps,
        "evaluated_by": getattr(experiment.evaluated_by, "username", None),
        "evaluated_at": experiment.evaluated_at.isoformat() if experiment.evaluated_at else None,
        "registered_by": actor.get_username() if getattr(actor, "is_authenticated", False) else None,
        "registered_at": timezone.now().isoformat(),
        **(lineage_extra or {}),
    }
    counts = (dv.split or {}).get("counts") or {}
    card = model_card(
        project=project,
        dataset_name=dv.dataset.name,
        dataset_number=dv.number,
        target=experiment.target,
        features=features,
        algorithm=run.algorithm,
        params=run.params,
        metrics=metrics,
        test=test,
        n_rows=int(counts.get("train", 0)) + int(counts.get("validation", 0)),
    )
    spec = NewVersion(
        experiment=experiment,
        run=run,
        dataset_version=dv,
        name=f"{experiment.target} · {run.algorithm}",
        classes=list(test.get("classes") or []) if experiment.task_type == "classification" else [],
        positive_class=test.get("positive_class"),
        artifact_key=run.final_artifact_key,
        sha256=run.final_artifact_sha256,
        size_bytes=size,
        features=features,
        metrics=metrics,
        lineage=lineage,
        card=card,
        origin={"run": run.pk, **{k: v for k, v in (lineage_extra or {}).items() if k.startswith("retrain")}},
    )
    return model_version_create(project=project, actor=actor, spec=spec)


# --- preparation (the job) ---------------------------------------------------------------------------


def model_version_prepare(*, version: ModelVersion, features: list[str]) -> ModelVersion:
    """Build the version's input schema and drift reference from its training rows, then mark it
    ready. Idempotent: a ready version is returned as it is, and of two runs at once (a
    redelivered job) the second one's write changes nothing.

    Reads train + validation rows of the version's dataset version (never its locked test rows),
    keeps at most REFERENCE_MAX_ROWS of them, scores them with the model (predictions and
    confidences are part of the reference), and stores both the sample and the sorted arrays.
    """
    from datasets.selectors import split_frames
    from datasets.storage import frame_save

    if version.reference_status == ReferenceStatus.READY:
        return version
    frames = split_frames(version.dataset_version)
    train = pd.concat([frames.train, frames.val], ignore_index=True)
    missing = [c for c in features if c not in train.columns]
    if missing:
        raise InvalidInput(f"Feature columns missing from the dataset version: {missing}.", field="run")
    X = train[features]
    cleaned = [
        c
        for step in (version.lineage or {}).get("recipe") or []
        if step.get("op") == "clean_categories"
        for c in step.get("columns") or []
    ]
    schema = schema_infer(X, features, cleaned=cleaned)
    if len(X) > REFERENCE_MAX_ROWS:
        X = X.sample(REFERENCE_MAX_ROWS, random_state=0).reset_index(drop=True)
    model = model_load(version.artifact_key, version.sha256)
    labels, conf, _ = score_arrays(model, X, task_type=version.task_type)
    reference = reference_build(frame=X, input_schema=schema, predictions=np.asarray(labels), confidences=conf)
    stats = reference.stats
    if reference.arrays:
        stored = bytes_save(reference.arrays_npz(), prefix="monitoring/references", suffix=".npz")
        stats = stats | {"arrays_key": stored.key, "arrays_sha256": stored.sha256}
    sample = frame_save(X, prefix=f"projects/{version.project_id}/references")
    with transaction.atomic():
        # A failed attempt may be retried (a transient fault): it too may write, a ready one never.
        ModelVersion.objects.exclude(reference_status=ReferenceStatus.READY).filter(pk=version.pk).update(
            input_schema=schema,
            reference_stats=stats,
            reference_key=sample.key,
            model_card=with_schema(version.model_card, schema, len(train)),
            reference_status=ReferenceStatus.READY,
            reference_error="",
        )
    version.refresh_from_db()
    return version


def model_version_prepare_failed(*, version: ModelVersion, error: str) -> None:
    """The preparation failed for good: say why on the version (the gate and the API show it)."""
    ModelVersion.objects.filter(pk=version.pk, reference_status=ReferenceStatus.PENDING).update(
        reference_status=ReferenceStatus.FAILED, reference_error=error[:2000]
    )


def model_version_prepare_run(*, model_version_id: int, features: list[str]) -> dict[str, Any]:
    """The `model_version.prepare` job's work: prepare, or record the failure on the version."""
    version = ModelVersion.objects.select_related("dataset_version").filter(pk=model_version_id).first()
    if version is None:
        return {"skipped": "model version deleted"}
    try:
        version = model_version_prepare(version=version, features=features)
    except Exception as exc:
        model_version_prepare_failed(version=version, error=f"{type(exc).__name__}: {exc}")
        raise
    return {"model_version": version.pk, "reference_status": version.reference_status}


# --- retention (the hourly housekeeping) -----------------------------------------------------------


def versions_in_use() -> set[int]:
    """Versions something may serve again: active, shadow or thresholded on a deployment that is
    not retired, and each such deployment's rollback target (rollback is one ungated click)."""
    from deployments.models import Deployment, DeploymentStatus
    from deployments.rollout.selectors import previous_version

    used: set[int] = set()
    for d in Deployment.objects.exclude(status=DeploymentStatus.RETIRED):
        used.update(v for v in (d.model_version_id, d.shadow_model_version_id, d.decision_threshold_version_id) if v)
        previous = previous_version(d)
        if previous is not None:
            used.add(previous.pk)
    return used


def model_versions_archive(*, now: Any = None) -> dict[str, int]:
    """Delete the files (model, drift reference) of versions older than MODEL_VERSION_RETENTION_DAYS
    that nothing can serve again (`versions_in_use`) and that are not among their project's newest
    MODEL_VERSION_KEEP_LATEST. The row stays, with `archived_at`: metrics, lineage, model card and
    the predictions it made remain; the gate refuses it and its download answers 410.

    Each version is re-checked under a lock on its row, with deploy, promote, shadow and rollback
    reading `archived_at` (`version_unready_reason`) before they change a deployment; the files go
    after the commit. A model file shared with another version (never made by registration) stays."""
    days = settings.MODEL_VERSION_RETENTION_DAYS
    if not days:
        return {"model_versions_archived": 0, "model_files_deleted": 0}
    now = now or timezone.now()
    keep = settings.MODEL_VERSION_KEEP_LATEST
    candidates = ModelVersion.objects.filter(archived_at__isnull=True, created_at__lt=now - timedelta(days=days))
    in_use = versions_in_use()
    newest: dict[int, set[int]] = {}  # per project, read once
    archived = deleted = 0
    for version in candidates.only("pk", "project_id", "version").order_by("project_id", "version"):
        if version.project_id not in newest:
            latest = ModelVersion.objects.filter(project_id=version.project_id).order_by("-version")[:keep]
            newest[version.project_id] = set(latest.values_list("pk", flat=True))
        if version.pk in in_use or version.pk in newest[version.project_id]:
            continue
        with transaction.atomic():
            v = ModelVersion.objects.select_for_update().filter(pk=version.pk, archived_at__isnull=True).first()
            if v is None or v.pk in versions_in_use():  # a deployment chose it meanwhile
                continue
            shared = ModelVersion.objects.exclude(pk=v.pk).filter(artifact_key=v.artifact_key).exists()
            keys = [k for k in (v.reference_key, (v.reference_stats or {}).get("arrays_key")) if k]
            keys += [] if shared else [v.artifact_key]
            ModelVersion.objects.filter(pk=v.pk).update(archived_at=now)
            transaction.on_commit(lambda keys=keys: [default_storage.delete(k) for k in keys])
        archived += 1
        deleted += len(keys)
    return {"model_versions_archived": archived, "model_files_deleted": deleted}


def model_file_gone(version: ModelVersion) -> None:
    """410 for the download of a version whose files the retention deleted."""
    if version.archived_at is not None:
        raise Gone(
            f"v{version.version}'s model file was deleted on {version.archived_at:%Y-%m-%d} by the model retention "
            "(MODEL_VERSION_RETENTION_DAYS); its metrics, lineage and model card remain.",
            field="model_version",
        )
