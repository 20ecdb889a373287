"""Workflow stage provider (see projects.workflow.stage): Deploy."""

from __future__ import annotations

from projects.models import Project
from projects.services import StageState
from projects.workflow import stage


@stage("deploy")
def _deploy(project: Project, states: dict[str, StageState]) -> StageState:
    from deployments.models import Deployment, DeploymentStatus, ModelVersion

    url = f"/projects/{project.pk}/deployments/"
    active = Deployment.objects.filter(project=project, status=DeploymentStatus.ACTIVE).select_related("model_version")
    first = active.first()
    if first is not None:
        n = active.count()
        return StageState(
            "deploy",
            "Deploy",
            "done",
            f"{n} active deployment(s); “{first.name}” serves v{first.model_version.version}.",
            "",
            url,
        )
    if Deployment.objects.filter(project=project, status=DeploymentStatus.PAUSED).exists():
        return StageState("deploy", "Deploy", "blocked", "Every deployment is paused.", "Resume a deployment.", url)
    # Only retired deployments (or none): as good as none, deploying a version is the next step.
    versions = ModelVersion.objects.filter(project=project)
    if not versions.exists():
        from experiments.models import Experiment

        evaluated = (
            Experiment.objects.filter(project=project, test_evaluation__isnull=False, evaluated_run__isnull=False)
            .order_by("-evaluated_at")
            .first()
        )
        return StageState(
            "deploy",
            "Deploy",
            "todo",
            "No registered model yet.",
            "Register the evaluated run of an experiment as a model version.",
            # the "Next step" link goes where it is done: the evaluated run's register form
            f"/runs/{evaluated.evaluated_run_id}/#register" if evaluated else f"/projects/{project.pk}/models/",
        )
    from deployments.registry.selectors import gate_check

    latest = versions.first()
    gate = gate_check(latest, project)
    if not gate.passed:
        return StageState(
            "deploy",
            "Deploy",
            "blocked",
            f"v{latest.version} fails the promotion gate: {gate.reasons[0]}",
            "Improve the model, or an owner overrides the gate with a justification.",
            f"/models/{latest.pk}/",
        )
    return StageState(
        "deploy",
        "Deploy",
        "in_progress",
        f"v{latest.version} passes the gate.",
        "Deploy it.",
        f"/models/{latest.pk}/#deploy",
    )
