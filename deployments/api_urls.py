"""The deployments app's API: each room's endpoints (paths and names are the public contract)."""

from deployments.batch import apis as batch_apis
from deployments.monitoring import apis as monitoring_apis
from deployments.registry import apis as registry_apis
from deployments.reviews import apis as review_apis
from deployments.rollout import apis as rollout_apis
from deployments.serving import apis as serving_apis


def register(router) -> None:
    registry_apis.register(router)
    rollout_apis.register(router)
    review_apis.register(router)


urlpatterns = [
    *registry_apis.urlpatterns,
    *serving_apis.urlpatterns,
    *batch_apis.urlpatterns,
    *review_apis.urlpatterns,
    *monitoring_apis.urlpatterns,
]
