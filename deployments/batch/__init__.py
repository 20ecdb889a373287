"""Batch inference: a file or a dataset version scored by a job, its output file, and the child
job that logs its predictions for monitoring."""
