"""External runs: a model trained outside the platform (a notebook's LightGBM pipeline), logged as a
run of an experiment, then evaluated by the platform like any other run.

What the client sends: a name, an algorithm label, its parameters and cross-validated metrics
(as it measured them), and the fitted model in skops format. What the server checks, before
anything is stored:

- the file: a skops file (a zip), never a pickle or joblib file; under `EXTERNAL_MODEL_MAX_BYTES`
  and unpacking to under `EXTERNAL_MODEL_MAX_UNPACKED_BYTES`; loaded with the same fixed type
  allowlist as our own model files (`mlplatform.artifacts.model_loads`);
- the object: a fitted scikit-learn estimator or Pipeline that takes the experiment's **raw
  feature columns** (a DataFrame with the columns of the train export minus the target, exactly
  what a deployed model receives), whose classes are the target's, and that predicts on the
  validation rows: the platform scores it there itself (`external.validation_metrics`), next to
  the metrics the client claims;
- the metrics: names of the task's metrics, finite numbers, the experiment's metric among them.

The model is then written by our own code (`model_save`, so its hash is recorded) and joins the
leaderboard as kind "external". The one final evaluation predicts the locked test rows with it
**as uploaded** (the platform does not know how to refit it); the test rows never leave the server.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from experiments.coordinator import training_data
from experiments.events import external_run_logged_event
from experiments.ml import training
from experiments.ml.metrics import compute_metrics, metric_names
from experiments.models import Experiment, Run, RunStatus
from mlplatform.errors import InvalidInput, PayloadTooLarge

EXTERNAL = "external"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".dill", ".cloudpickle")
MAX_PARAMS_BYTES = 20_000


@dataclass
class ExternalRun:
    """What a client logs (the API's multipart fields, parsed)."""

    name: str
    algorithm: str
    params: Any
    cv_metrics: Any
    filename: str
    data: bytes


def parse_json_field(raw: Any, field: str) -> Any:
    """A multipart field holding JSON (or an already-parsed value from a JSON body)."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"Not valid JSON: {exc.msg} at position {exc.pos}.", field=field) from None


def clean_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise InvalidInput("params must be a JSON object of parameter names to values.", field="params")
    if len(json.dumps(params, default=str)) > MAX_PARAMS_BYTES:
        raise InvalidInput(f"params is larger than {MAX_PARAMS_BYTES:,} bytes of JSON.", field="params")
    for name, value in params.items():
        if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            raise InvalidInput(f"params.{name} must be a plain JSON value.", field="params")
    return params


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{where} must be a finite number.", field="cv_metrics")
    return float(value)


def clean_cv_metrics(experiment: Experiment, metrics: Any) -> dict[str, dict[str, float | None]]:
    """`{metric: number}` or `{metric: {"mean", "std"?}}`, names of the task's metrics, normalised
    to the platform's `{metric: {"mean", "std"}}`. The experiment's metric must be there (it ranks)."""
    valid = metric_names(experiment.task_type)
    if not isinstance(metrics, dict) or not metrics:
        raise InvalidInput(
            f'cv_metrics must be a JSON object such as {{"{experiment.metric}": {{"mean": 0.8, "std": 0.02}}}}.',
            field="cv_metrics",
        )
    out: dict[str, dict[str, float | None]] = {}
    for name, value in metrics.items():
        if name not in valid:
            raise InvalidInput(
                f"Unknown metric {name!r} for this {experiment.task_type} experiment: use {', '.join(valid)}.",
                field="cv_metrics",
            )
        if isinstance(value, dict):
            unknown = set(value) - {"mean", "std"}
            if "mean" not in value or unknown:
                raise InvalidInput(f"cv_metrics.{name} must be a number or {{mean, std}}.", field="cv_metrics")
            std = value.get("std")
            std = None if std is None else _number(std, f"cv_metrics.{name}.std")
            if std is not None and std < 0:
                raise InvalidInput(f"cv_metrics.{name}.std must not be negative.", field="cv_metrics")
            out[name] = {"mean": _number(value["mean"], f"cv_metrics.{name}.mean"), "std": std}
        else:
            out[name] = {"mean": _number(value, f"cv_metrics.{name}"), "std": None}
    if experiment.metric not in out:
        raise InvalidInput(
            f"cv_metrics must include the experiment's metric {experiment.metric!r} (it ranks the leaderboard).",
            field="cv_metrics",
        )
    return out


def check_size(size: int) -> None:
    """Before the upload is read into memory."""
    if size > settings.EXTERNAL_MODEL_MAX_BYTES:
        raise PayloadTooLarge(
            f"The model file is {size:,} bytes; the limit is {settings.EXTERNAL_MODEL_MAX_BYTES:,}.",
            field="model",
        )


def check_file(filename: str, data: bytes) -> None:
    """Size, kind (a skops zip, never a pickle) and unpacked size, before any deserialisation."""
    name = (filename or "").lower()
    check_size(len(data))
    if name.endswith(PICKLE_SUFFIXES) or data[:1] == b"\x80":
        raise InvalidInput(
            "Pickle and joblib files are never loaded (unpickling runs arbitrary code). Save the model with "
            "skops: skops.io.dump(model, 'model.skops').",
            field="model",
        )
    if not name.endswith(".skops") or not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidInput("The model must be a skops file (model.skops, from skops.io.dump).", field="model")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        unpacked = sum(info.file_size for info in zf.infolist())
    if unpacked > settings.EXTERNAL_MODEL_MAX_UNPACKED_BYTES:
        raise PayloadTooLarge(
            f"The model file unpacks to {unpacked:,} bytes; the limit is "
            f"{settings.EXTERNAL_MODEL_MAX_UNPACKED_BYTES:,}.",
            field="model",
        )


def load_model(data: bytes) -> Any:
    """skops with the platform's fixed allowlist; then: a fitted estimator that predicts."""
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from mlplatform.artifacts import UntrustedModelFile, model_loads

    try:
        model = model_loads(data)
    except UntrustedModelFile as exc:
        raise InvalidInput(
            f"{exc} Only scikit-learn, LightGBM and the platform's own types load.", field="model"
        ) from None
    if not isinstance(model, BaseEstimator) or not hasattr(model, "predict"):
        raise InvalidInput(
            f"The file holds a {type(model).__name__}, not a scikit-learn estimator or Pipeline.", field="model"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise InvalidInput("The model is not fitted: fit it before saving.", field="model") from None
    return model


def _check_columns(model: Any, features: list[str]) -> None:
    """A model fitted on named columns must have been fitted on exactly the experiment's features
    (drop columns inside the pipeline, so the deployed model takes what every client sends)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return
    names = [str(n) for n in names]
    missing, extra = sorted(set(features) - set(names)), sorted(set(names) - set(features))
    if missing or extra:
        said = "; ".join(
            part
            for part in (
                f"columns it does not know: {missing}" if missing else "",
                f"columns this experiment does not have: {extra}" if extra else "",
            )
            if part
        )
        raise InvalidInput(
            f"The model was fitted on other columns ({said}). Fit it on the train export without the target "
            f"(columns {features}); drop columns inside the pipeline.",
            field="model",
        )


def _check_classes(model: Any, classes: list[Any]) -> None:
    model_classes = [training.json_label(c) for c in getattr(model, "classes_", [])]
    strange = [c for c in model_classes if c not in classes]
    if not model_classes or strange:
        raise InvalidInput(
            f"The model's classes {model_classes} are not the target's classes {classes}: fit it on the target "
            "column as exported.",
            field="model",
        )


def validation_scores(experiment: Experiment, model: Any) -> dict[str, Any]:
    """Predict the validation rows (never the test rows) with the uploaded model: a model that cannot
    is refused; one that can is scored by the platform."""
    from datasets.selectors import split_frames

    frames = split_frames(experiment.dataset_version)
    data = training_data(experiment, frames.train)
    features = list(data.plan.feature_columns)
    _check_columns(model, features)
    classes = [training.json_label(c) for c in np.unique(data.y)] if experiment.task_type == "classification" else None
    if classes is not None:
        _check_classes(model, classes)
    val = frames.val[frames.val[experiment.target].notna()].reset_index(drop=True)
    if val.empty:
        raise InvalidInput("The validation split has no rows with a target to check the model on.", field="model")
    t0 = time.perf_counter()
    try:
        pred, proba = training.predict_all(model, val[features], experiment.task_type)
    except Exception as exc:  # noqa: BLE001 - the client's model failing is the client's 400
        raise InvalidInput(
            f"The model could not predict the validation rows ({type(exc).__name__}: {str(exc)[:300]}). It "
            f"receives a DataFrame of the raw feature columns {features}.",
            field="model",
        ) from None
    seconds = time.perf_counter() - t0
    if len(pred) != len(val):
        raise InvalidInput(f"The model gave {len(pred)} predictions for {len(val)} rows.", field="model")
    all_classes = np.unique(data.y) if classes is not None else None
    proba = training.align_proba(model, proba, all_classes)
    try:
        scores = compute_metrics(
            experiment.task_type,
            val[experiment.target].to_numpy(),
            pred,
            proba,
            all_classes,
            positive=experiment.positive_class,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"The model's predictions cannot be scored: {str(exc)[:300]}.", field="model") from None
    return {
        "validation_metrics": {k: (None if v is None else float(v)) for k, v in scores.items()},
        "n_validation": len(val),
        "predict_seconds": seconds,
        "feature_columns": features,
    }


def external_run_log(*, experiment: Experiment, actor: Any, upload: ExternalRun) -> Run:
    """Check everything, then store the model (our own writer, hash recorded) and add the run."""
    from mlplatform.artifacts import model_save

    name = (upload.name or "").strip()[:120]
    algorithm = (upload.algorithm or "").strip()
    if not algorithm or len(algorithm) > 60:
        raise InvalidInput("algorithm: a label of 1 to 60 characters (e.g. lightgbm).", field="algorithm")
    params = clean_params(upload.params)
    cv_metrics = clean_cv_metrics(experiment, upload.cv_metrics)
    check_file(upload.filename, upload.data)
    model = load_model(upload.data)
    checked = validation_scores(experiment, model)
    stored = model_save(model, prefix=f"projects/{experiment.project_id}/models")
    now = timezone.now()
    with transaction.atomic():
        last = experiment.runs.aggregate(n=Max("trial_number"))["n"]
        run = Run.objects.create(
            project_id=experiment.project_id,
            experiment=experiment,
            algorithm=algorithm,
            params=params,
            trial_number=(last or 0) + 1,
            kind=EXTERNAL,
            status=RunStatus.SUCCEEDED,
            cv_metrics=cv_metrics,
            score=cv_metrics[experiment.metric]["mean"],
            predict_seconds=checked["predict_seconds"],
            model_size_bytes=stored.size,
            artifact_key=stored.key,
            artifact_sha256=stored.sha256,
            external={
                "name": name or f"{algorithm} (external)",
                "filename": (upload.filename or "")[-200:],
                "logged_by": actor.get_username() if getattr(actor, "is_authenticated", False) else None,
                "validation_metrics": checked["validation_metrics"],
                "n_validation": checked["n_validation"],
            },
            started_at=now,
            finished_at=now,
        )
        run.experiment = experiment
        external_run_logged_event(actor=actor, run=run)
    return run
