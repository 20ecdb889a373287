"""Workflow stage provider (see projects.workflow.stage)."""
