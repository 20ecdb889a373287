"""The workflow picture on a project's overview: which stages are done, blocked and why.

Each app contributes its stages from its own `workflow.py` with `@stage(key, label, order)`;
a provider gets the project and the states computed so far (so "Model" can be blocked by an
unfinished "Data") and returns a StageState.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.module_loading import autodiscover_modules

from projects.models import Decision, Project
from projects.services import StageState

Provider = Callable[[Project, dict[str, StageState]], StageState]


@dataclass(frozen=True)
class _Stage:
    key: str
    label: str
    order: int
    provider: Provider


_STAGES: dict[str, _Stage] = {}
_discovered = False

STAGE_ORDER = [
    ("problem", "Problem"),
    ("data", "Data"),
    ("model", "Model"),
    ("evaluate", "Evaluate"),
    ("deploy", "Deploy"),
    ("monitor", "Monitor"),
    ("review", "Review"),
]


def stage(key: str) -> Callable[[Provider], Provider]:
    order = [k for k, _ in STAGE_ORDER].index(key)
    label = dict(STAGE_ORDER)[key]

    def register(func: Provider) -> Provider:
        _STAGES[key] = _Stage(key, label, order, func)
        return func

    return register


def problem_missing(project: Project) -> list[str]:
    missing = []
    if not project.objective.strip():
        missing.append("the objective")
    if not project.success_metric:
        missing.append("a success metric")
    if project.success_threshold is None:
        missing.append("a success threshold")
    if project.baseline_score is None:
        missing.append("the baseline score to beat")
    return missing


@stage("problem")
def _problem(project: Project, states: dict[str, StageState]) -> StageState:
    url = reverse("projects:problem", args=[project.pk])
    missing = problem_missing(project)
    if project.decision == Decision.NO_GO:
        return StageState(
            "problem",
            "Problem",
            "blocked",
            "Decision: no-go. " + project.decision_rationale,
            "Revisit the problem statement or archive the project.",
            url,
        )
    if missing:
        return StageState(
            "problem",
            "Problem",
            "in_progress",
            "Missing: " + ", ".join(missing) + ".",
            f"Define {missing[0]} before training.",
            url,
        )
    violated = [a["text"] for a in project.assumptions if a.get("status") == "violated"]
    if violated:
        return StageState(
            "problem",
            "Problem",
            "blocked",
            f"Assumption violated: {violated[0]}",
            "Revise the problem statement: an assumption does not hold.",
            url,
        )
    if project.decision == Decision.PENDING:
        return StageState(
            "problem", "Problem", "done", "Problem statement complete; go / no-go still pending.", "", url
        )
    return StageState("problem", "Problem", "done", "Problem statement complete; decision: go.", "", url)


def workflow_for(*, project: Project, user: Any = None) -> list[StageState]:
    global _discovered
    if not _discovered:
        autodiscover_modules("workflow")
        _discovered = True
    states: dict[str, StageState] = {}
    for key, label in STAGE_ORDER:
        spec = _STAGES.get(key)
        if spec is None:
            states[key] = StageState(key, label, "todo", "Coming soon.")
            continue
        states[key] = spec.provider(project, states)
    return list(states.values())


def next_step(stages: list[StageState]) -> StageState | None:
    for s in stages:
        if s.state != "done":
            return s
    return None
