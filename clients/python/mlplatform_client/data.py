"""Datasets, their versions (profile, warnings, target, split, rows, export) and recipes."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from mlplatform_client.base import Progress, Resource, started
from mlplatform_client.frames import has_pyarrow, records, unescape_formula, upload_file


class Recipe(Resource):
    path = "/api/v1/recipes/{id}/"


class Dataset(Resource):
    path = "/api/v1/datasets/{id}/"

    def versions(self) -> list[Version]:
        return [Version(self._client, self._client.http.get(f"/api/v1/dataset-versions/{v['id']}/"))
                for v in self.refresh().data["versions"]]  # fmt: skip

    def latest(self) -> Version:
        return Version(self._client, self._client.http.get(f"/api/v1/dataset-versions/{self.refresh().latest_version['id']}/"))  # fmt: skip

    def upload(self, data: Any, *, wait: bool = True, progress: Progress = None) -> Version:
        """A new version from a DataFrame, a path or an open file (read and profiled by a job)."""
        filename, handle = upload_file(data, self.data["name"])
        response = self._client.http.post(f"{self.url}versions/", files={"file": (filename, handle)})
        body, job = started(self._client, response)
        return self._client._version_after(body["id"], job, wait=wait, progress=progress)

    def append(self, rows: pd.DataFrame | list[dict], *, wait: bool = True, progress: Progress = None) -> Version:
        """A new version: the latest rows, then these. Earlier rows keep their row ids."""
        payload = records(rows) if isinstance(rows, pd.DataFrame) else rows
        response = self._client.http.post(f"{self.url}rows/", json={"rows": payload})
        body, job = started(self._client, response)
        return self._client._version_after(body["id"], job, wait=wait, progress=progress)


class Version(Resource):
    """One immutable version of a dataset: its profile, warnings, split and rows."""

    path = "/api/v1/dataset-versions/{id}/"

    # --- reading ---------------------------------------------------------------------------
    def profile(self) -> pd.DataFrame:
        """One row per column: kind, dtype, missing, unique, statistics."""
        columns = self.data.get("columns") or []
        frame = pd.DataFrame([{k: v for k, v in c.items() if not isinstance(v, (dict, list))} for c in columns])
        return frame.set_index("name") if "name" in frame.columns else frame

    def warnings_frame(self) -> pd.DataFrame:
        """The ranked warnings (kind, column, severity, message, fix)."""
        return pd.DataFrame(self.data.get("warnings") or [], columns=["kind", "column", "severity", "message", "fix"])

    def rows(self, *, split: str | None = None, columns: list[str] | None = None, page_size: int = 500) -> pd.DataFrame:
        """Visible rows (never the locked test rows) indexed by their stable `row_id`, with a
        `_split` column once the version is split; every page fetched through its cursor."""
        params: dict[str, Any] = {"page_size": page_size}
        if split:
            params["split"] = split
        if columns:
            params["columns"] = ",".join(columns)
        frames, body = [], self._client.http.get(f"{self.url}rows/", params=params)
        while True:
            page = pd.DataFrame(body["rows"], columns=body["columns"], index=pd.Index(body["row_ids"], name="row_id"))
            if body.get("split") is not None:
                page["_split"] = body["split"]
            frames.append(page)
            if not body.get("next"):
                break
            body = self._client.http.get(body["next"])
        return pd.concat(frames) if frames else pd.DataFrame()

    def export(
        self,
        *,
        split: str | None = None,
        columns: list[str] | None = None,
        path: str | None = None,
        fmt: str | None = None,
    ) -> pd.DataFrame | str:
        """The train / validation rows as a DataFrame (Parquet when pyarrow is installed), or
        saved to `path` in `fmt` ("csv" or "parquet"). The test rows stay on the server."""
        fmt = fmt or ("parquet" if (path or "").endswith(".parquet") or (path is None and has_pyarrow()) else "csv")
        params: dict[str, Any] = {"format": fmt}
        if split:
            params["split"] = split
        if columns:
            params["columns"] = ",".join(columns)
        # A file, not JSON: the session's `Accept: application/json` would be answered with a 406.
        response = self._client.http.request(
            "GET", f"{self.url}export/", params=params, stream=True, headers={"Accept": "*/*"}
        )
        if path is not None:
            with open(path, "wb") as fh:
                for chunk in response.iter_content(1 << 20):
                    fh.write(chunk)
            return path
        content = response.content
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(content))
        return unescape_formula(pd.read_csv(io.BytesIO(content)))

    # --- changing (each starts a job; waits for it unless wait=False) -----------------------
    def set_target(self, target: str, *, wait: bool = True, progress: Progress = None) -> Version:
        """Choose the target column; the version is profiled again (imbalance, leakage)."""
        response = self._client.http.post(f"{self.url}target/", json={"target": target})
        return self._after(response, wait, progress)

    def split(
        self,
        strategy: str = "random",
        *,
        column: str | None = None,
        test_size: float = 0.2,
        val_size: float = 0.2,
        seed: int = 42,
        wait: bool = True,
        progress: Progress = None,
    ) -> Version:
        """Train / validation / locked test: random, stratified, group or time (with `column`)."""
        body = {"strategy": strategy, "test_size": test_size, "val_size": val_size, "seed": seed, "column": column}
        response = self._client.http.post(f"{self.url}split/", json=body)
        return self._after(response, wait, progress)

    def clean(self, steps: list[dict], *, wait: bool = True, progress: Progress = None) -> Version:
        """A new version with drop_columns / drop_duplicates applied to every row."""
        response = self._client.http.post(f"{self.url}clean/", json={"steps": steps})
        body, job = started(self._client, response)
        return self._client._version_after(body["id"], job, wait=wait, progress=progress)

    def preview_recipe(self, steps: list[dict], rows: int = 20) -> dict:
        """The steps applied to a sample of this version: before and after."""
        return self._client.http.post(
            "/api/v1/recipes/preview/", json={"dataset_version": self.id, "steps": steps, "rows": rows}
        ).json()

    def _after(self, response, wait: bool, progress: Progress) -> Version:
        body, job = started(self._client, response)
        self.data = body
        self.last_job = job
        if wait and job is not None:
            job.wait(progress=progress)
            self.refresh()
        return self
