"""Python client of the mlplatform REST API.

    from mlplatform_client import Client
    client = Client("http://127.0.0.1:8000", token="...")
    project = client.projects.create("Loans", "classification", success_metric="roc_auc")
    version = project.upload(frame, "loans").set_target("approved").split("stratified", column="approved")
    experiment = project.train(version, "approved").wait(progress=True)
    print(experiment.leaderboard())

The version of this package is the version of the API it speaks (`GET /api/v1/version/`).
"""

from mlplatform_client.base import Job
from mlplatform_client.client import Client, Project
from mlplatform_client.data import Dataset, Recipe, Version
from mlplatform_client.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    JobFailed,
    MLPlatformError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    ValidationError,
    WaitTimeout,
)
from mlplatform_client.experiments import Experiment, Run
from mlplatform_client.serving import Deployment, ModelVersion, Review

__version__ = "1.2.0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "Client",
    "Conflict",
    "Dataset",
    "Deployment",
    "Experiment",
    "Job",
    "JobFailed",
    "MLPlatformError",
    "ModelVersion",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Project",
    "RateLimited",
    "Recipe",
    "Review",
    "Run",
    "ServerError",
    "ServiceUnavailable",
    "ValidationError",
    "Version",
    "WaitTimeout",
    "__version__",
]
