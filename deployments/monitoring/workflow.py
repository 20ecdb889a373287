"""Workflow stage provider (see projects.workflow.stage): each deployment's health at a glance."""

from __future__ import annotations

from projects.models import Project
from projects.services import StageState
from projects.workflow import stage


@stage("monitor")
def _monitor(project: Project, states: dict[str, StageState]) -> StageState:
    from deployments.models import Deployment, DeploymentStatus
    from deployments.monitoring import selectors

    deployments = list(Deployment.objects.filter(project=project, status=DeploymentStatus.ACTIVE).order_by("name"))
    url = f"/projects/{project.pk}/deployments/"
    if not deployments:
        return StageState("monitor", "Monitor", "todo", "Nothing deployed yet.", "Deploy a model to monitor it.", url)
    rows = [{"id": d.pk, "name": d.name, **selectors.health(d)} for d in deployments]
    worst = next((r for r in rows if r["state"] == "critical"), None) or next(
        (r for r in rows if r["state"] == "warning"), None
    )
    detail = "; ".join(
        f"{r['name']}: {r['state']}" + (f" ({r['firing']} alert(s))" if r["firing"] else "") for r in rows
    )
    first = worst or rows[0]
    url = f"/projects/{project.pk}/deployments/{first['id']}/monitoring/"
    extra = {"deployments": rows}
    if worst is not None and worst["state"] == "critical":
        return StageState(
            "monitor",
            "Monitor",
            "blocked",
            detail,
            f"Open {worst['name']}'s dashboard: drift or a performance drop; retrain on fresh data.",
            url,
            extra,
        )
    if worst is not None or any(r["state"] == "unknown" for r in rows):
        nxt = "Check the warnings." if worst else "Wait for the first snapshot or compute one now."
        return StageState("monitor", "Monitor", "in_progress", detail, nxt, url, extra)
    return StageState("monitor", "Monitor", "done", detail, "", url, extra)
