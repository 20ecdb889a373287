def register(router) -> None:
    """Register this app's API viewsets on the shared /api/v1/ router."""
    from datasets.apis import DatasetVersionViewSet, DatasetViewSet, RecipeViewSet, SqlConnectionViewSet

    router.register("datasets", DatasetViewSet, basename="dataset")
    router.register("dataset-versions", DatasetVersionViewSet, basename="dataset-version")
    router.register("recipes", RecipeViewSet, basename="recipe")
    router.register("sql-connections", SqlConnectionViewSet, basename="sql-connection")
