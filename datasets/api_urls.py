def register(router) -> None:
    """Register this app's API viewsets on the shared /api/v1/ router."""
