"""Batch inference jobs."""
