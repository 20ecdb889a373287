"""Model versions, deployments (predict, feedback, batch, monitoring, rollback) and reviews."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from mlplatform_client.base import Job, Progress, Resource, started
from mlplatform_client.frames import predictions_frame, records, upload_file

PREDICT_CHUNK = 1000  # the server's default PREDICT_MAX_INSTANCES


class ModelVersion(Resource):
    path = "/api/v1/models/{id}/"

    def deploy(self, name: str, **options: Any) -> Deployment:
        """Deploy this version (through the project's promotion gate; owners may pass a
        `justification` to override it). Options: review_threshold, unknown_category_policy,
        allow_missing, max_instances."""
        body = {"project": self.data["project"], "name": name, "model_version": self.id, **options}
        return Deployment(self._client, self._client.http.post("/api/v1/deployments/", json=body).json())

    def gate(self) -> dict:
        return self._client.http.get(f"{self.url}gate/")

    def download(self, path: str) -> str:
        """The model file (skops); the server checks its SHA-256 before sending it."""
        response = self._client.http.request("GET", f"{self.url}download/", stream=True)
        with open(path, "wb") as fh:
            for chunk in response.iter_content(1 << 20):
                fh.write(chunk)
        return path


class Deployment(Resource):
    path = "/api/v1/deployments/{id}/"

    def predict(self, instances: pd.DataFrame | list[dict], *, api_key: str | None = None) -> pd.DataFrame:
        """Predictions for a DataFrame, as a DataFrame with the same index (in chunks of the
        deployment's limit): prediction, confidence, status, review_id, id, proba_<class>."""
        frame = instances if isinstance(instances, pd.DataFrame) else pd.DataFrame(instances)
        rows = records(frame)
        size = int(self.data.get("max_instances") or PREDICT_CHUNK)
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        out: list[dict] = []
        for start in range(0, len(rows), size):
            body = self._client.http.post(
                f"{self.url}predict/", json={"instances": rows[start : start + size]}, headers=headers
            ).json()
            out += body["predictions"]
        return predictions_frame(out, frame.index)

    def feedback(self, prediction_ids, actuals, *, api_key: str | None = None) -> dict:
        """Ground truth for earlier predictions (two sequences of the same length). Returns
        {"recorded", "replaced", "replaced_items"}: a label sent again replaces the first one."""
        items = [
            {"prediction_id": str(p), "actual": a.item() if hasattr(a, "item") else a}
            for p, a in zip(list(prediction_ids), list(actuals), strict=True)
        ]
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        result: dict[str, Any] = {}
        for start in range(0, len(items), 10_000):
            body = self._client.http.post(
                f"{self.url}feedback/", json={"items": items[start : start + 10_000]}, headers=headers
            ).json()
            for key, value in body.items():
                if isinstance(value, list):  # replaced_items: which predictions already had a label
                    result[key] = result.get(key, []) + value
                else:
                    result[key] = result.get(key, 0) + value if isinstance(value, int) else value
        return result

    def create_key(self, name: str, rate_per_minute: int | None = None) -> str:
        """A deployment API key (shown once): for applications that only predict and send feedback."""
        body = {"name": name, **({"rate_per_minute": rate_per_minute} if rate_per_minute else {})}
        return self._client.http.post(f"{self.url}keys/", json=body).json()["key"]

    def batch(
        self, data: Any = None, *, dataset_version: int | None = None, output_format: str = "csv",
        log_predictions: bool = True, wait: bool = True, progress: Progress = None,
    ) -> pd.DataFrame | Job:  # fmt: skip
        """Score a DataFrame / file (or a dataset version) as a job; with `wait`, the scored rows."""
        form: dict[str, Any] = {"output_format": output_format, "log_predictions": str(log_predictions).lower()}
        files = None
        if dataset_version is not None:
            form["dataset_version"] = dataset_version
        else:
            files = {"file": upload_file(data, "batch")}
        response = self._client.http.post(f"{self.url}batch/", data=form, files=files)
        body, job = started(self._client, response)
        if not wait:
            return job
        job.wait(progress=progress)
        listed = next(b for b in self._client.http.get(f"{self.url}batch/") if b["id"] == body["id"])
        content = self._client.http.request("GET", listed["download_url"]).content
        if output_format == "parquet":
            return pd.read_parquet(io.BytesIO(content))
        return pd.read_csv(io.BytesIO(content))

    def monitoring(self) -> dict:
        """Latest snapshot (drift, performance, latency, volume, quality), series, open alerts."""
        return self._client.http.get(f"{self.url}monitoring/")

    def drift(self) -> pd.DataFrame:
        """Per-feature drift of the latest snapshot, most drifted first."""
        latest = self.monitoring().get("latest") or {}
        return pd.DataFrame((latest.get("drift") or {}).get("features") or [])

    def snapshot(self, *, window_minutes: int | None = None, wait: bool = True, progress: Progress = None) -> dict:
        """Compute a monitoring snapshot now (a job); returns the monitoring summary after it."""
        body = {"window_minutes": window_minutes} if window_minutes else {}
        _body, job = started(self._client, self._client.http.post(f"{self.url}snapshot/", json=body))
        if wait and job is not None:
            job.wait(progress=progress)
        return self.monitoring()

    def retrain(self, *, holdout_fraction: float = 0.3, wait: bool = True, progress: Progress = None) -> Job:
        """Retrain on training plus labelled production data; challenger vs champion."""
        _body, job = started(
            self._client, self._client.http.post(f"{self.url}retrain/", json={"holdout_fraction": holdout_fraction})
        )
        return job.wait(progress=progress) if wait and job is not None else job

    def rollback(self, reason: str = "") -> Deployment:
        self.data = self._client.http.post(f"{self.url}rollback/", json={"reason": reason}).json()
        return self

    def promote(self, model_version: ModelVersion | int, *, reason: str = "", justification: str = "") -> Deployment:
        mv = model_version.id if isinstance(model_version, ModelVersion) else int(model_version)
        body = {"model_version": mv, "reason": reason, "justification": justification}
        self.data = self._client.http.post(f"{self.url}promote/", json=body).json()
        return self

    def reviews(self, status: str | None = "pending") -> list[Review]:
        params = {"deployment": self.id, **({"status": status} if status else {})}
        return [Review(self._client, r) for r in self._client.http.paginate("/api/v1/reviews/", params)]


class Review(Resource):
    """A prediction waiting for a person: approve it or override its label."""

    path = "/api/v1/reviews/{id}/"

    def approve(self, comment: str = "") -> Review:
        self.data = self._client.http.post(f"{self.url}approve/", json={"comment": comment}).json()
        return self

    def override(self, label: Any, comment: str = "") -> Review:
        self.data = self._client.http.post(f"{self.url}override/", json={"label": label, "comment": comment}).json()
        return self
