from jobs.apis import JobViewSet


def register(router) -> None:
    router.register("jobs", JobViewSet, basename="job")
