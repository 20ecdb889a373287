"""The experiments app's audit events: one typed constructor per event (see projects.events)."""

from __future__ import annotations

from typing import Any

from experiments.models import Experiment
from projects.events import AuditAction
from projects.models import AuditEvent
from projects.services import audit_record


def experiment_created_event(*, actor: Any, experiment: Experiment) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.EXPERIMENT_CREATED,
        project=experiment.project,
        obj=experiment,
        data={
            "target": experiment.target,
            "metric": experiment.metric,
            "algorithms": experiment.algorithms,
            "method": (experiment.search or {}).get("method"),
            **({"retrain_of": experiment.parent_id} if (experiment.search or {}).get("method") == "fixed" else {}),
        },
    )


def experiment_cancelled_event(*, actor: Any, experiment: Experiment) -> AuditEvent:
    return audit_record(
        actor=actor, action=AuditAction.EXPERIMENT_CANCELLED, project=experiment.project, obj=experiment
    )


def evaluation_started_event(*, actor: Any, experiment: Experiment, run_id: int) -> AuditEvent:
    """The one look at the locked test set was claimed for `run_id`."""
    return audit_record(
        actor=actor,
        action=AuditAction.EXPERIMENT_EVALUATION_STARTED,
        project=experiment.project,
        obj=experiment,
        data={"run": run_id},
    )


def experiment_evaluated_event(*, actor: Any, experiment: Experiment, run_id: int, verdict: str) -> AuditEvent:
    return audit_record(
        actor=actor,
        action=AuditAction.EXPERIMENT_EVALUATED,
        project=experiment.project,
        obj=experiment,
        data={"run": run_id, "verdict": verdict},
    )


def external_run_logged_event(*, actor: Any, run: Any) -> AuditEvent:
    """A client uploaded a model trained elsewhere as a run of this experiment."""
    return audit_record(
        actor=actor,
        action=AuditAction.RUN_EXTERNAL_LOGGED,
        project=run.project,
        obj=run,
        data={
            "experiment": run.experiment_id,
            "algorithm": run.algorithm,
            "name": run.external.get("name", ""),
            "sha256": run.artifact_sha256,
        },
    )
