"""Roles and the one permission table.

The permission layer (`projects.access`) and the role-matrix security test both read
`PERMISSIONS`: what a role may do is written down exactly once.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


class Action(StrEnum):
    VIEW = "view"  # read everything in the project
    EDIT_PROJECT = "edit_project"  # the problem statement, assumptions
    DECIDE = "decide"  # go / no-go
    MANAGE_MEMBERS = "manage_members"
    DELETE_PROJECT = "delete_project"
    VIEW_AUDIT = "view_audit"
    EDIT_DATA = "edit_data"  # datasets, versions, recipes, splits, SQL queries
    MANAGE_CONNECTIONS = "manage_connections"  # register SQL connections, webhooks
    RUN_EXPERIMENTS = "run_experiments"  # train, tune, evaluate, register
    MANAGE_DEPLOYMENTS = "manage_deployments"  # deploy, rollback, pause, keys, batch
    OVERRIDE_GATE = "override_gate"  # deploy a version that fails the promotion gate
    RETIRE_DEPLOYMENT = "retire_deployment"  # shut a deployment down for good (no way back)
    PREDICT = "predict"  # call a deployment with a user token
    REVIEW = "review"  # decide review items
    CANCEL_JOB = "cancel_job"
    VIEW_TRACEBACK = "view_traceback"  # a failed job's traceback


OWN, EDI, REV, VIE = Role.OWNER, Role.EDITOR, Role.REVIEWER, Role.VIEWER

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW: frozenset({OWN, EDI, REV, VIE}),
    Action.EDIT_PROJECT: frozenset({OWN, EDI}),
    Action.DECIDE: frozenset({OWN}),
    Action.MANAGE_MEMBERS: frozenset({OWN}),
    Action.DELETE_PROJECT: frozenset({OWN}),
    Action.VIEW_AUDIT: frozenset({OWN}),
    Action.EDIT_DATA: frozenset({OWN, EDI}),
    Action.MANAGE_CONNECTIONS: frozenset({OWN}),
    Action.RUN_EXPERIMENTS: frozenset({OWN, EDI}),
    Action.MANAGE_DEPLOYMENTS: frozenset({OWN, EDI}),
    Action.OVERRIDE_GATE: frozenset({OWN}),
    Action.RETIRE_DEPLOYMENT: frozenset({OWN}),
    Action.PREDICT: frozenset({OWN, EDI}),
    Action.REVIEW: frozenset({OWN, EDI, REV}),
    Action.CANCEL_JOB: frozenset({OWN, EDI}),
    Action.VIEW_TRACEBACK: frozenset({OWN}),
}


def role_allows(role: str | None, action: Action) -> bool:
    return role is not None and Role(role) in PERMISSIONS[action]
