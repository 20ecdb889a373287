"""Workflow stages of the deployments app: deploy, monitor, review (one module each)."""

from deployments import workflow_deploy, workflow_monitor, workflow_review  # noqa: F401
