"""Workflow stage providers (see projects.workflow.stage)."""
