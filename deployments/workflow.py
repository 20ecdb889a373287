"""Workflow stages of the deployments app: deploy, monitor, review (one module per room)."""

from deployments.monitoring import workflow as monitor_stage  # noqa: F401
from deployments.reviews import workflow as review_stage  # noqa: F401
from deployments.rollout import workflow as deploy_stage  # noqa: F401
