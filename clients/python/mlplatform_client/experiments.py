"""Experiments (wait, leaderboard, evaluate, log an external run) and runs (register, diagnose)."""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from mlplatform_client.base import Job, Progress, Resource, started
from mlplatform_client.errors import JobFailed, MLPlatformError


def _model_file(model: Any) -> tuple[str, bytes]:
    """(file name, skops bytes) from a fitted model, a path to a .skops file, or the file's bytes."""
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as fh:
            return os.path.basename(os.fspath(model)), fh.read()
    if isinstance(model, (bytes, bytearray)):
        return "model.skops", bytes(model)
    try:
        import skops.io as sio
    except ImportError:
        raise MLPlatformError(
            "Saving a model needs skops (pip install 'mlplatform-client[skops]'), or pass a .skops file."
        ) from None
    return "model.skops", sio.dumps(model)


def _plain_params(model: Any) -> dict[str, Any]:
    """The final estimator's constructor parameters that are plain JSON values."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if not hasattr(final, "get_params"):
        return {}
    plain = (str, int, float, bool, type(None))
    return {k: v for k, v in final.get_params(deep=False).items() if isinstance(v, plain)}


class Run(Resource):
    path = "/api/v1/runs/{id}/"

    def register(self):
        """This run (the one the final evaluation chose) becomes the project's next model version."""
        from mlplatform_client.serving import ModelVersion

        body, job = started(self._client, self._client.http.post(f"/api/v1/runs/{self.id}/register/"))
        if job is not None:  # its input schema and drift reference: deployable once built
            job.wait()
            body = self._client.http.get(f"/api/v1/models/{body['id']}/")
        return ModelVersion(self._client, body)

    def diagnose(self, *, wait: bool = True, progress: Progress = None) -> dict:
        """Diagnostics on validation data (confusion matrix, ROC/PR, residuals, importance...)."""
        body, job = started(self._client, self._client.http.post(f"{self.url}diagnose/"))
        if wait and job is not None:
            job.wait(progress=progress)
            body = self.refresh().data
        return body.get("diagnostics") or {}


class Experiment(Resource):
    path = "/api/v1/experiments/{id}/"

    @property
    def job(self) -> Job:
        return Job(self._client, self._client.http.get(f"/api/v1/jobs/{self.data['job']}/"))

    def wait(self, *, timeout: float | None = None, progress: Progress = None) -> Experiment:
        """Until training is over: the experiment's job covers every trial. Raises JobFailed if
        the job failed or every trial did."""
        self.job.wait(timeout=timeout, progress=progress)
        self.refresh()
        if self.data["status"] != "succeeded":
            raise JobFailed({"id": self.data["job"], "kind": "experiment.train", **self.data})
        return self

    def runs(self, *, sort: str | None = None) -> list[Run]:
        """The leaderboard's runs, best first by `sort` (a metric of the task; default the experiment's)."""
        params = {"sort": sort} if sort else None
        self.data = self._client.http.get(self.url, params=params)
        return [Run(self._client, r) for r in self.data.get("runs", [])]

    def leaderboard(self, *, sort: str | None = None) -> pd.DataFrame:
        """One row per run, best first: algorithm, kind, status, score, fit, the CV mean of
        every metric, fit seconds and parameters; indexed by run id."""
        rows = []
        for run in self.runs(sort=sort):
            r = run.data
            row: dict[str, Any] = {
                "run": r["id"],
                "algorithm": r["algorithm"],
                "kind": r["kind"],
                "status": r["status"],
                "score": r["score"],
                "fit": r.get("fit"),
            }
            for metric, value in (r.get("cv_metrics") or {}).items():
                row[metric] = (value or {}).get("mean")
            row["fit_seconds"] = r.get("fit_seconds")
            row["params"] = r.get("params")
            rows.append(row)
        return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()

    def best_run(self) -> Run:
        """The best successful candidate or ensemble (baselines are there to be beaten)."""
        for run in self.runs():
            if run.status == "succeeded" and run.kind != "baseline":
                return run
        raise LookupError("No successful run beyond the baselines.")

    def evaluate(self, run: Run | int, *, wait: bool = True, progress: Progress = None) -> dict:
        """The one final evaluation on the locked test set; a second one raises Conflict.
        Returns the test metrics with 95% intervals and the verdict against the project's bar."""
        run_id = run.id if isinstance(run, Run) else int(run)
        body, job = started(self._client, self._client.http.post(f"{self.url}evaluate/", json={"run": run_id}))
        if wait and job is not None:
            job.wait(progress=progress)
            body = self.refresh().data
        return body.get("test_evaluation") or {}

    def log_run(
        self,
        model: Any,
        *,
        algorithm: str,
        cv_metrics: dict[str, Any],
        params: dict[str, Any] | None = None,
        name: str = "",
    ) -> Run:
        """Log a model trained elsewhere as an external run of this experiment.

        `model`: a fitted scikit-learn Pipeline or estimator (LightGBM's included) that takes the
        experiment's raw feature columns (the train export without the target), or a path to its
        .skops file, or that file's bytes. It is sent in skops format, never pickled. `cv_metrics`:
        your cross-validated scores, `{metric: number}` or `{metric: {"mean", "std"}}`, with the
        experiment's metric among them. `params` default to the final estimator's plain parameters.
        The server checks the file and scores the model on the validation rows (`run.external`);
        `evaluate(run)` then judges it once on the locked test set, which never leaves the server.
        """
        filename, payload = _model_file(model)
        if params is None:
            params = _plain_params(model) if not isinstance(model, (str, bytes, bytearray, os.PathLike)) else {}
        form = {
            "algorithm": algorithm,
            "name": name,
            "params": json.dumps(params, default=str),
            "cv_metrics": json.dumps(cv_metrics),
        }
        response = self._client.http.post(f"{self.url}runs/external/", data=form, files={"model": (filename, payload)})
        return Run(self._client, response.json())

    def tune(self, *, algorithm: str = "", n_trials: int = 20, method: str = "tpe") -> Experiment:
        """A follow-up experiment tuning one algorithm further (returns at once; call wait())."""
        response = self._client.http.post(
            f"{self.url}tune/", json={"algorithm": algorithm, "n_trials": n_trials, "method": method}
        )
        body, _job = started(self._client, response)
        return Experiment(self._client, self._client.http.get(f"/api/v1/experiments/{body['id']}/"))

    def cancel(self) -> Experiment:
        self.data = self._client.http.post(f"{self.url}cancel/").json()
        return self
