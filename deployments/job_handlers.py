"""Job handlers of the deployments app, one module per area (discovered by jobs.runner)."""

from deployments import batch_jobs, monitoring_jobs  # noqa: F401
