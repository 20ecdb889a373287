"""The deployments app's models, one module per room (NetBox style): Django finds them here.

- registry: ModelVersion
- rollout: Deployment, DeploymentChange
- serving: ApiKey, Prediction (and the logged columns), PredictionErrorCount
- reviews: ReviewItem
- monitoring: MonitoringSnapshot, Alert
"""

from deployments.models.monitoring import Alert, AlertState, MonitoringSnapshot
from deployments.models.registry import ModelVersion, ReferenceStatus
from deployments.models.reviews import ReviewItem, ReviewMode, ReviewStatus
from deployments.models.rollout import Deployment, DeploymentChange, DeploymentStatus
from deployments.models.serving import (
    LATER_COLUMNS,
    LOGGED_COLUMNS,
    LOGGED_NAMES,
    ApiKey,
    Prediction,
    PredictionErrorCount,
    PredictionSegment,
    PredictionStatus,
    logged_prediction,
    uuid7,
)

__all__ = [
    "LATER_COLUMNS",
    "LOGGED_COLUMNS",
    "LOGGED_NAMES",
    "Alert",
    "AlertState",
    "ApiKey",
    "Deployment",
    "DeploymentChange",
    "DeploymentStatus",
    "ModelVersion",
    "MonitoringSnapshot",
    "Prediction",
    "PredictionErrorCount",
    "PredictionSegment",
    "PredictionStatus",
    "ReferenceStatus",
    "ReviewItem",
    "ReviewMode",
    "ReviewStatus",
    "logged_prediction",
    "uuid7",
]
