"""Workflow stage providers (see projects.workflow.stage): Model and Evaluate."""

from __future__ import annotations

from datasets.models import DatasetVersion
from experiments.models import Experiment, ExperimentStatus
from projects.models import Project
from projects.services import StageState
from projects.workflow import problem_missing, stage


def _url(project: Project) -> str:
    return f"/projects/{project.pk}/experiments/"


@stage("model")
def _model(project: Project, states: dict[str, StageState]) -> StageState:
    url = _url(project)
    missing = [m for m in problem_missing(project) if m in ("a success metric", "a success threshold")]
    if missing:
        return StageState(
            "model",
            "Model",
            "blocked",
            f"Define {missing[0]} before training.",
            "Complete the problem statement.",
            f"/projects/{project.pk}/problem/",
        )
    if not DatasetVersion.objects.filter(project=project).exclude(split_key="").exists():
        return StageState("model", "Model", "blocked", "Split the data first.", "Split a dataset version.", url)
    experiments = Experiment.objects.filter(project=project)
    if experiments.filter(status=ExperimentStatus.SUCCEEDED).exists():
        n = experiments.filter(status=ExperimentStatus.SUCCEEDED).count()
        return StageState("model", "Model", "done", f"{n} finished experiment(s).", "", url)
    if experiments.filter(status__in=[ExperimentStatus.QUEUED, ExperimentStatus.RUNNING]).exists():
        return StageState("model", "Model", "in_progress", "Training…", "Wait for the leaderboard.", url)
    return StageState("model", "Model", "todo", "No experiment yet.", "Start an experiment: baselines run first.", url)


@stage("evaluate")
def _evaluate(project: Project, states: dict[str, StageState]) -> StageState:
    url = _url(project)
    model = states.get("model")
    if model is not None and model.state != "done":
        return StageState("evaluate", "Evaluate", "blocked", "Train a model first.", model.next_step, url)
    done = Experiment.objects.filter(project=project, test_evaluation__isnull=False).order_by("-evaluated_at").first()
    if done is not None:
        verdict = (done.test_evaluation or {}).get("verdict") or {}
        return StageState("evaluate", "Evaluate", "done", verdict.get("text", "Evaluated."), "", url)
    if Experiment.objects.filter(project=project, evaluated_run__isnull=False).exists():
        return StageState("evaluate", "Evaluate", "in_progress", "Final evaluation running.", "", url)
    latest = (
        Experiment.objects.filter(project=project, status=ExperimentStatus.SUCCEEDED).order_by("-created_at").first()
    )
    return StageState(
        "evaluate",
        "Evaluate",
        "todo",
        "The locked test set is untouched.",
        "Diagnose the best run, then evaluate it once on the test set.",
        f"/experiments/{latest.pk}/#evaluate" if latest else url,  # the "Next step" link: where it is done
    )
