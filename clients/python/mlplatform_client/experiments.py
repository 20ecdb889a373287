"""Experiments (wait, leaderboard, evaluate) and runs (register, diagnose)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlplatform_client.base import Job, Progress, Resource, started
from mlplatform_client.errors import JobFailed


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
