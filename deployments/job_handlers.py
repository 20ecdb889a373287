"""Job handlers of the deployments app, one module per room (discovered by jobs.runner)."""

from deployments.batch import job_handlers as batch_jobs  # noqa: F401
from deployments.monitoring import job_handlers as monitoring_jobs  # noqa: F401
from deployments.registry import job_handlers as registry_jobs  # noqa: F401
