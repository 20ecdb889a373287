"""The entry point: `Client(url, token=...)`, then projects and everything in them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlplatform_client._http import Transport
from mlplatform_client.base import Job, Progress, Resource, started
from mlplatform_client.data import Dataset, Recipe, Version
from mlplatform_client.experiments import Experiment, Run
from mlplatform_client.frames import upload_file
from mlplatform_client.serving import Deployment, ModelVersion, Review


class Project(Resource):
    path = "/api/v1/projects/{id}/"

    def update(self, **fields: Any) -> Project:
        self.data = self._client.http.request("PATCH", self.url, json=fields).json()
        return self

    def delete(self) -> None:
        self._client.http.request("DELETE", self.url)

    def add_member(self, username: str, role: str) -> dict:
        return self._client.http.post(f"{self.url}members/", json={"username": username, "role": role}).json()

    def members(self) -> list[dict]:
        return self._client.http.get(f"{self.url}members/")

    def workflow(self) -> list[dict]:
        return self._client.http.get(f"{self.url}workflow/")

    # --- data --------------------------------------------------------------------------------
    def upload(
        self, data: Any, name: str, *, description: str = "", wait: bool = True, progress: Progress = None
    ) -> Version:
        """A new dataset from a DataFrame, a CSV / Parquet / JSON-lines path or an open file.
        Returns its first version once read and profiled (unless wait=False)."""
        filename, handle = upload_file(data, name)
        form = {"project": self.id, "name": name, "description": description}
        response = self._client.http.post("/api/v1/datasets/", data=form, files={"file": (filename, handle)})
        body, job = started(self._client, response)
        return self._client._version_after(body["latest_version"]["id"], job, wait=wait, progress=progress)

    def import_url(self, url: str, name: str, *, wait: bool = True, progress: Progress = None) -> Version:
        response = self._client.http.post(
            "/api/v1/datasets/", json={"project": self.id, "name": name, "source_url": url}
        )
        body, job = started(self._client, response)
        return self._client._version_after(body["latest_version"]["id"], job, wait=wait, progress=progress)

    def datasets(self) -> list[Dataset]:
        return [Dataset(self._client, d) for d in self._client.http.paginate("/api/v1/datasets/", {"project": self.id})]

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets():
            if d.name == name:
                return d
        raise LookupError(f"No dataset named {name!r} in project {self.id}.")

    def save_recipe(self, name: str, steps: list[dict], *, dataset: Dataset | None = None) -> Recipe:
        """Save recipe steps under `name` (a new version when the name exists)."""
        body = {"project": self.id, "name": name, "steps": steps, **({"dataset": dataset.id} if dataset else {})}
        return Recipe(self._client, self._client.http.post("/api/v1/recipes/", json=body).json())

    # --- experiments -------------------------------------------------------------------------
    def train(
        self,
        version: Version | int,
        target: str,
        *,
        algorithms: list[str] | None = None,
        search: dict | None = None,
        recipe: Recipe | int | None = None,
        metric: str = "",
        cv_folds: int = 5,
        name: str = "",
    ) -> Experiment:
        """Start an experiment (baselines always run). Returns at once: call `.wait()`."""
        body: dict[str, Any] = {
            "project": self.id,
            "dataset_version": version.id if isinstance(version, Version) else int(version),
            "target": target,
            "cv_folds": cv_folds,
            "name": name,
            "metric": metric,
        }
        if algorithms:
            body["algorithms"] = algorithms
        if search:
            body["search"] = search
        if recipe is not None:
            body["recipe"] = recipe.id if isinstance(recipe, Recipe) else int(recipe)
        data, _job = started(self._client, self._client.http.post("/api/v1/experiments/", json=body))
        return Experiment(self._client, data)

    def experiments(self) -> list[Experiment]:
        return [Experiment(self._client, e) for e in self._client.http.paginate("/api/v1/experiments/", {"project": self.id})]  # fmt: skip

    # --- serving and review ------------------------------------------------------------------
    def models(self) -> list[ModelVersion]:
        return [ModelVersion(self._client, m) for m in self._client.http.paginate("/api/v1/models/", {"project": self.id})]  # fmt: skip

    def deployments(self) -> list[Deployment]:
        return [Deployment(self._client, d) for d in self._client.http.paginate("/api/v1/deployments/", {"project": self.id})]  # fmt: skip

    def reviews(self, status: str | None = "pending", **filters: Any) -> list[Review]:
        params = {"project": self.id, **({"status": status} if status else {}), **filters}
        return [Review(self._client, r) for r in self._client.http.paginate("/api/v1/reviews/", params)]

    def jobs(self, **filters: Any) -> list[Job]:
        return [Job(self._client, j) for j in self._client.http.paginate("/api/v1/jobs/", {"project": self.id, **filters})]  # fmt: skip


class _Collection:
    def __init__(self, client: Client, path: str, cls: type[Resource]):
        self._client, self._path, self._cls = client, path, cls

    def get(self, id: int) -> Any:
        return self._cls(self._client, self._client.http.get(f"{self._path}{int(id)}/"))

    def list(self, **filters: Any) -> Iterator[Any]:
        """Every object (all pages), filtered like the API (`status="running"`...)."""
        for item in self._client.http.paginate(self._path, filters or None):
            yield self._cls(self._client, item)


class Projects(_Collection):
    def create(self, name: str, task_type: str, **fields: Any) -> Project:
        """A project with its problem statement; you become its owner. Fields: objective,
        success_metric, success_threshold, baseline_score, assumptions=[{"text": ...}], ..."""
        body = {"name": name, "task_type": task_type, **fields}
        return Project(self._client, self._client.http.post(self._path, json=body).json())


class Client:
    """The mlplatform REST API.

        client = Client("https://ml.example.com", token="...")
        client = Client.login("https://ml.example.com", "me", "password")
        client = Client(url, api_key="...")   # a deployment key: predict and feedback only

    Calls are retried on 429 and 503 with back-off (honouring Retry-After); errors raise
    typed exceptions (`mlplatform_client.ValidationError` with `.errors`, `NotFound`, ...).
    """

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None, **http: Any):
        self.http = Transport(base_url, token=token, api_key=api_key, **http)
        self.projects = Projects(self, "/api/v1/projects/", Project)
        self.datasets = _Collection(self, "/api/v1/datasets/", Dataset)
        self.versions = _Collection(self, "/api/v1/dataset-versions/", Version)
        self.recipes = _Collection(self, "/api/v1/recipes/", Recipe)
        self.experiments = _Collection(self, "/api/v1/experiments/", Experiment)
        self.runs = _Collection(self, "/api/v1/runs/", Run)
        self.models = _Collection(self, "/api/v1/models/", ModelVersion)
        self.deployments = _Collection(self, "/api/v1/deployments/", Deployment)
        self.reviews = _Collection(self, "/api/v1/reviews/", Review)
        self.jobs = _Collection(self, "/api/v1/jobs/", Job)

    @classmethod
    def login(cls, base_url: str, username: str, password: str, **http: Any) -> Client:
        """A new API token for this user (tokens are listed and revoked in the web UI)."""
        probe = Transport(base_url, **http)
        token = probe.post("/api/v1/auth/token/", json={"username": username, "password": password}).json()["token"]
        return cls(base_url, token=token, **http)

    def server_version(self) -> str:
        return self.http.get("/api/v1/version/")["api_version"]

    def check_version(self) -> str:
        """The server's API version; a warning when this client was made for another major."""
        import warnings

        from mlplatform_client import __version__

        server = self.server_version()
        if server.split(".")[0] != __version__.split(".")[0]:
            warnings.warn(f"mlplatform-client {__version__} talks to API {server}: install the matching client.",
                          stacklevel=2)  # fmt: skip
        return server

    def _version_after(self, version_id: int, job: Job | None, *, wait: bool, progress: Progress) -> Version:
        if wait and job is not None:
            job.wait(progress=progress)
        version = Version(self, self.http.get(f"/api/v1/dataset-versions/{version_id}/"))
        version.last_job = job
        if wait and version.data.get("status") == "processing":  # the ingest job hands over to a profile job
            latest = version.data.get("job") or {}
            if latest.get("id") and (job is None or latest["id"] != job.id):
                Job(self, self.http.get(f"/api/v1/jobs/{latest['id']}/")).wait(progress=progress)
                version.refresh()
        return version

    def close(self) -> None:
        self.http.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Client", "Project"]
