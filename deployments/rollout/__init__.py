"""Rollout: deployments of a model version: deploy (gated), promote, roll back, pause, resume,
shadow, serving policy; the deployment page and its history."""
