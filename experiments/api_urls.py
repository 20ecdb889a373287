from django.urls import path

from experiments.apis import AlgorithmsApi, ExperimentViewSet, RunViewSet

urlpatterns = [path("algorithms/", AlgorithmsApi.as_view(), name="algorithms")]


def register(router) -> None:
    """Register this app's API viewsets on the shared /api/v1/ router."""
    router.register("experiments", ExperimentViewSet, basename="experiment")
    router.register("runs", RunViewSet, basename="run")
