"""Monitoring snapshot and retrain jobs."""
