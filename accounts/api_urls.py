from django.urls import path

from accounts.apis import ObtainTokenApi, TokenViewSet


def register(router) -> None:
    router.register("tokens", TokenViewSet, basename="token")


urlpatterns = [path("auth/token/", ObtainTokenApi.as_view(), name="api-token")]
