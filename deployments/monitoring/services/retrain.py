"""Retrain: challenger vs champion on fresh production data, promotion only through the gate.

The `monitoring.retrain` job, step by step, each through the room that owns it:
1. the labelled production predictions of the deployment, oldest first; the newest
   `holdout_fraction` of them (at least 10) are the **fresh holdout**, never trained on;
2. a new dataset version (source `retrain`, parent = the champion's version): the champion's
   train + validation rows, the older production rows (split train / validation) and the
   holdout rows as its **locked test set** (`datasets.services.version_split_assigned`);
3. a challenger **experiment** (`experiments.services.experiment_retrain`): the champion
   experiment's configuration with the champion run's algorithm and parameters, trained in this
   job (`coordinator.experiment_run_inline`: a leaderboard with the baselines), diagnosed on its
   validation rows, and evaluated **once** on the locked test set, i.e. the fresh holdout;
4. the champion scored on the same holdout rows with the same metrics and bootstrap
   (`experiments.ml.metrics`), so both columns of the comparison mean the same thing;
5. the challenger **registered** through the one registration path
   (`registry.services.model_version_register`: number, card, `model.registered`, audit) and
   prepared (input schema, drift reference) before the job ends, so it can be promoted at once.
Promotion (`challenger_promote`) is the rollout's own, behind the general gate and the check that
the challenger beat the champion deployed now.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from datasets.models import DatasetVersion, VersionSource
from datasets.selectors import split_frames
from datasets.services import version_create_from_frame, version_split_assigned
from deployments import prediction_store
from deployments.events import model_retrain_registered_event, retrain_started_event
from deployments.models import Deployment, DeploymentStatus, ModelVersion, Prediction
from deployments.monitoring.selectors import RETRAIN_JOB
from deployments.registry.selectors import gate_check
from deployments.registry.services import model_version_prepare, model_version_register
from deployments.rollout.services import deployment_promote
from experiments import coordinator, evaluation
from experiments.ml.metrics import bootstrap_ci
from experiments.ml.training import predict_all
from experiments.models import Experiment, Run, RunStatus
from experiments.services import evaluate_claim, experiment_retrain
from jobs.runner import job_enqueue
from mlplatform.artifacts import model_load
from mlplatform.errors import Conflict, InvalidInput
from projects.metrics import METRICS

MIN_LABELS = 20  # labelled production predictions needed to retrain and compare
MIN_HOLDOUT = 10


def retrain_start(*, deployment: Deployment, actor: Any, reason: str = "manual", holdout_fraction: float = 0.3):
    """Queue a retrain job: new data version, challenger experiment, comparison on a fresh holdout."""
    if deployment.status == DeploymentStatus.RETIRED:  # its challenger could never be promoted
        raise Conflict(f"The deployment “{deployment.name}” is retired: nothing to retrain.", field="deployment")
    if not isinstance(holdout_fraction, (int, float)) or isinstance(holdout_fraction, bool):
        raise InvalidInput("A number between 0.1 and 0.5.", field="holdout_fraction")
    if not 0.1 <= holdout_fraction <= 0.5:
        raise InvalidInput("A number between 0.1 and 0.5.", field="holdout_fraction")
    mv = deployment.model_version
    if mv.dataset_version_id is None:
        raise InvalidInput("The deployed model has no training dataset version to start from.", field="deployment")
    if mv.experiment_id is None or mv.run_id is None:
        raise InvalidInput(
            "The deployed model was not registered from an experiment's run: a retrain repeats that "
            "experiment's configuration on fresh data.",
            field="deployment",
        )
    if mv.run.kind == "external":
        raise InvalidInput(
            "The deployed model is an external run (trained outside the platform): the platform cannot retrain "
            "it. Log a new external run on fresh data and evaluate it.",
            field="deployment",
        )
    with transaction.atomic():
        job = job_enqueue(
            project=deployment.project,
            kind=RETRAIN_JOB,
            created_by=actor,
            params={
                "deployment_id": deployment.pk,
                "champion_id": mv.pk,
                "reason": reason,
                "holdout_fraction": float(holdout_fraction),
            },
            target=deployment,
            message="Retrain waiting for a worker",
        )
        retrain_started_event(actor=actor, deployment=deployment, job_id=job.pk, reason=reason)
    return job


def labelled_production_frame(deployment: Deployment, feature_names: list[str], target: str):
    """Every labelled production row of `deployment` (oldest first): inputs + actual + timestamps."""
    rows = list(
        Prediction.objects.filter(deployment=deployment, actual__isnull=False)
        .exclude(source="shadow")
        .order_by("created_at", "id")
        .values_list("inputs", "actual", "created_at", "actual_at", "actual_source", "id")
    )
    # Rows logged through the columnar store keep their features in its segments (inputs NULL).
    stored = prediction_store.inputs_for(deployment, [(r[5], r[2]) for r in rows if r[0] is None])
    frame = pd.DataFrame(
        [r[0] if isinstance(r[0], dict) else stored.get(r[5], {}) for r in rows], columns=feature_names
    )
    frame[target] = [r[1] for r in rows]
    meta = pd.DataFrame(
        {
            "created_at": [r[2] for r in rows],
            "actual_at": [r[3] for r in rows],
            "actual_source": [r[4] for r in rows],
        }
    )
    return frame, meta


def _source_detail(*, job, deployment, champion, base, fresh, holdout, meta) -> dict[str, Any]:
    fresh_meta = meta.iloc[: len(fresh)]
    return {
        "retrain_of_deployment": deployment.pk,
        "champion_model_version": champion.pk,
        "parent_rows": len(base),
        "production_rows": len(fresh),
        "production_from": fresh_meta["created_at"].min().isoformat() if len(fresh) else None,
        "production_to": fresh_meta["created_at"].max().isoformat() if len(fresh) else None,
        "labels_from": {str(k): int(v) for k, v in fresh_meta["actual_source"].value_counts().items()},
        "holdout_rows": len(holdout),
        "holdout_from": meta.iloc[-len(holdout) :]["created_at"].min().isoformat(),
        "job": job.pk,
    }


def _retrain_version(*, job, deployment, champion, holdout_fraction: float) -> tuple[DatasetVersion, pd.DataFrame]:
    """The retrain's dataset version (steps 1 and 2 of the module docstring) and its holdout rows."""
    features = [f["name"] for f in champion.input_schema]
    target = champion.target
    dv = champion.dataset_version
    parts = split_frames(dv)
    base = pd.concat([parts.train, parts.val], ignore_index=True)
    prod, meta = labelled_production_frame(deployment, features, target)
    if len(prod) < MIN_LABELS:
        raise InvalidInput(
            f"Only {len(prod)} labelled production predictions; at least {MIN_LABELS} are needed to retrain "
            "and compare.",
            field="deployment",
        )
    n_hold = max(MIN_HOLDOUT, round(len(prod) * holdout_fraction))
    holdout, fresh = prod.iloc[-n_hold:].reset_index(drop=True), prod.iloc[:-n_hold].reset_index(drop=True)
    if target in base.columns:
        for part in (fresh, holdout):
            try:
                part[target] = part[target].astype(base[target].dtype)
            except (TypeError, ValueError):
                pass
    combined = pd.concat(
        [base, fresh.reindex(columns=base.columns), holdout.reindex(columns=base.columns)], ignore_index=True
    )
    # Older production rows are split like the champion's train / validation; the holdout is the test.
    split = dv.split or {}
    val_share = float(split.get("val_size", 0.2)) / max(0.1, 1 - float(split.get("test_size", 0.2)))
    rng = np.random.default_rng(int(split.get("seed", 42)))
    assignment = np.concatenate(
        [
            np.zeros(len(parts.train), dtype=np.int8),
            np.ones(len(parts.val), dtype=np.int8),
            (rng.random(len(fresh)) < val_share).astype(np.int8),
            np.full(len(holdout), 2, dtype=np.int8),
        ]
    )
    version = version_create_from_frame(
        dataset=dv.dataset,
        frame=combined,
        source=VersionSource.RETRAIN,
        created_by=job.created_by,
        parent=dv,
        source_detail=_source_detail(
            job=job, deployment=deployment, champion=champion, base=base, fresh=fresh, holdout=holdout, meta=meta
        ),
        enqueue_profile=False,
    )
    version = version_split_assigned(
        version=version,
        actor=job.created_by,
        assignment=assignment,
        detail={"retrain_job": job.pk, "holdout": "the newest labelled production rows"},
    )
    return version, holdout


def _challenger_run(experiment: Experiment) -> Run:
    """The champion's configuration retrained: the ensemble when the champion was one, else the candidate."""
    kind = "ensemble" if (experiment.search or {}).get("ensemble_k", 0) >= 2 else "candidate"
    run = experiment.runs.filter(kind=kind).order_by("trial_number").first()
    if run is None or run.status != RunStatus.SUCCEEDED:
        why = run.error if run is not None else "it was not trained"
        raise InvalidInput(f"The challenger could not be trained: {why}", field="deployment")
    return run


def _train_and_evaluate(*, job, ctx, champion: ModelVersion, version: DatasetVersion) -> tuple[Experiment, Run]:
    """Step 3: the challenger experiment, trained, diagnosed and evaluated once, in this job."""
    experiment = experiment_retrain(
        parent=champion.experiment,
        champion_run=champion.run,
        dataset_version=version,
        created_by=job.created_by,
        reason=job.params.get("reason", ""),
    )
    ctx.progress(35, "Training the challenger with the champion's configuration (and the baselines)")
    experiment = coordinator.experiment_run_inline(experiment=experiment, ctx=ctx)
    run = _challenger_run(experiment)
    ctx.progress(55, "Diagnostics of the challenger on its validation rows")
    evaluation.diagnose_execute(run_id=run.pk)
    ctx.progress(65, "The challenger's one final evaluation, on the fresh holdout")
    experiment = evaluate_claim(experiment=experiment, run=run, actor=job.created_by)
    evaluation.evaluate_execute(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    run.refresh_from_db()
    return experiment, run


def _champion_on_holdout(champion: ModelVersion, holdout: pd.DataFrame) -> dict[str, Any]:
    """Step 4: the champion's metrics on the holdout rows, as the challenger's evaluation computes them."""
    features = [f["name"] for f in champion.input_schema]
    truth = holdout[champion.target].to_numpy()
    model = model_load(champion.artifact_key, champion.sha256)
    pred, proba = predict_all(model, holdout[features], champion.task_type)
    classes = np.asarray(champion.classes) if champion.task_type == "classification" and champion.classes else None
    return bootstrap_ci(
        champion.task_type,
        truth,
        pred,
        proba,
        classes,
        n_boot=settings.EXPERIMENT_BOOTSTRAP_SAMPLES,
        positive=champion.positive_class,
    )


def _primary_metric(project: Any, available: dict[str, Any]) -> str:
    preferred = getattr(project, "success_metric", "") or ""
    if preferred in available:
        return preferred
    for name in ("f1", "accuracy", "rmse", "mae", "r2"):
        if name in available:
            return name
    return next(iter(available), "")


def _compare(deployment, champion, champ_metrics, chall_metrics, version, holdout, experiment) -> dict[str, Any]:
    primary = _primary_metric(deployment.project, chall_metrics)
    lower = primary in METRICS and not METRICS[primary].higher_is_better
    a = (chall_metrics.get(primary) or {}).get("value")
    b = (champ_metrics.get(primary) or {}).get("value")
    return {
        "deployment_id": deployment.pk,
        "champion": {"id": champion.pk, "version": champion.version, "metrics": champ_metrics},
        "challenger": {"version": None, "metrics": chall_metrics},
        "primary_metric": primary,
        "lower_is_better": lower,
        "challenger_better": a is not None and b is not None and (a < b if lower else a > b),
        "holdout_rows": len(holdout),
        "dataset_version_id": version.pk,
        "dataset_version_number": version.number,
        "experiment_id": experiment.pk,
    }


def retrain_run(*, job: Any, ctx: Any) -> dict[str, Any]:
    """The retrain job (see the module docstring). A redelivery after the challenger was registered
    returns its comparison; one before starts over (an earlier attempt's dataset version and
    experiment stay in their history)."""
    done = ModelVersion.objects.filter(lineage__retrain_job=job.pk).first()
    if done is not None:
        return (done.lineage.get("comparison") or {}) | {"challenger_id": done.pk}
    params = job.params
    deployment = Deployment.objects.select_related("project").get(pk=params["deployment_id"])
    champion = ModelVersion.objects.select_related("dataset_version__dataset", "experiment", "run").get(
        pk=params["champion_id"]
    )
    ctx.progress(5, "Reading the training data and the labelled production data")
    version, holdout = _retrain_version(
        job=job, deployment=deployment, champion=champion, holdout_fraction=float(params.get("holdout_fraction", 0.3))
    )
    ctx.progress(20, f"New dataset version v{version.number}: {len(holdout)} fresh rows held out")
    experiment, run = _train_and_evaluate(job=job, ctx=ctx, champion=champion, version=version)
    ctx.progress(80, "Scoring the champion on the same holdout")
    chall_metrics = experiment.test_evaluation["metrics"]
    comparison = _compare(
        deployment, champion, _champion_on_holdout(champion, holdout), chall_metrics, version, holdout, experiment
    )
    ctx.progress(85, "Registering and preparing the challenger")
    lineage = {"retrain_job": job.pk, "retrain_of": champion.pk, "deployment": deployment.pk}
    challenger = model_version_register(
        run=run,
        actor=job.created_by,
        lineage_extra=lineage | {"reason": params.get("reason", ""), "comparison": comparison},
    )
    challenger = model_version_prepare(version=challenger, features=experiment.test_evaluation["feature_columns"])
    comparison["challenger"] = {"id": challenger.pk, "version": challenger.version, "metrics": chall_metrics}
    with transaction.atomic():
        ModelVersion.objects.filter(pk=challenger.pk).update(lineage=challenger.lineage | {"comparison": comparison})
        model_retrain_registered_event(
            actor=job.created_by,
            challenger=challenger,
            champion=champion,
            primary_metric=comparison["primary_metric"],
            better=comparison["challenger_better"],
        )
    return comparison | {"challenger_id": challenger.pk}


def gate_check_challenger(*, deployment: Deployment, challenger: ModelVersion) -> dict[str, Any]:
    """Promotion gate for a retrained challenger: the deployment gate (final test score beats the
    baseline and meets the success threshold, decision go) *and* it beat the deployed champion on
    the same fresh holdout."""
    comparison = (challenger.lineage or {}).get("comparison") or {}
    champion_id = (comparison.get("champion") or {}).get("id")
    checks = [
        {
            "name": "compared_with_deployed",
            "passed": champion_id == deployment.model_version_id,
            "detail": "Compared with the version deployed now"
            if champion_id == deployment.model_version_id
            else "The comparison was made against another version; retrain again",
        },
        {
            "name": "beats_champion",
            "passed": bool(comparison.get("challenger_better")),
            "detail": f"{comparison.get('primary_metric')} on {comparison.get('holdout_rows')} fresh rows",
        },
    ]
    project_gate = gate_check(challenger, deployment.project)
    checks.append(
        {
            "name": "deployment_gate",
            "passed": project_gate.passed,
            "detail": "Meets the project's bar" if project_gate.passed else "; ".join(project_gate.reasons),
        }
    )
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "project_gate": project_gate.as_dict()}


def challenger_promote(*, deployment: Deployment, challenger: ModelVersion, actor: Any) -> Deployment:
    """Make the challenger the deployed version, only through the gate (else 409).

    The promotion itself is the rollout's (history, audit, webhooks), so a retrained version is
    promoted exactly like any other, plus the champion comparison.
    """
    if challenger.project_id != deployment.project_id or not (challenger.lineage or {}).get("retrain_job"):
        raise InvalidInput("Not a retrained challenger of this project.", field="model_version")
    gate = gate_check_challenger(deployment=deployment, challenger=challenger)
    if not gate["passed"]:
        failed = [c["detail"] for c in gate["checks"] if not c["passed"]]
        raise Conflict("The promotion gate failed: " + "; ".join(failed))
    return deployment_promote(
        deployment=deployment,
        actor=actor,
        model_version=challenger,
        reason="Retrained challenger beat the champion on fresh data",
    )
