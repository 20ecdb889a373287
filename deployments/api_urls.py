"""The deployments app's API: registry + serving, review queue, monitoring (one module each)."""

from deployments import apis, monitoring_apis, review_apis


def register(router) -> None:
    apis.register(router)
    review_apis.register(router)
    monitoring_apis.register(router)


urlpatterns = [*apis.urlpatterns, *review_apis.urlpatterns, *monitoring_apis.urlpatterns]
