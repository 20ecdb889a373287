from django.urls import path

from jobs.apis import JobViewSet
from jobs.webhook_apis import ProjectWebhookTestApi


def register(router) -> None:
    router.register("jobs", JobViewSet, basename="job")


urlpatterns = [path("projects/<int:pk>/webhook/test/", ProjectWebhookTestApi.as_view(), name="project-webhook-test")]
