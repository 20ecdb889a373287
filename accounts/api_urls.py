from accounts.apis import TokenViewSet


def register(router) -> None:
    router.register("tokens", TokenViewSet, basename="token")
