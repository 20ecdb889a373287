urlpatterns: list = []


def register(router) -> None:
    """Register viewsets on the shared /api/v1/ router."""
