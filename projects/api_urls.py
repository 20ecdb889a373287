from projects.apis import ProjectViewSet


def register(router) -> None:
    router.register("projects", ProjectViewSet, basename="project")
