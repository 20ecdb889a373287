"""Resources (a project, a dataset version, a job...) and waiting for jobs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlplatform_client.errors import JobFailed, WaitTimeout

if TYPE_CHECKING:
    from mlplatform_client.client import Client

TERMINAL = ("succeeded", "failed", "cancelled")
Progress = Callable[[dict], None] | bool | None


class Resource:
    """A server object: its fields in `data` (also as attributes), `refresh()` to read it again."""

    path = ""  # "/api/v1/projects/{id}/"

    def __init__(self, client: Client, data: dict):
        self._client = client
        self.data = dict(data)

    @property
    def id(self) -> int:
        return self.data["id"]

    @property
    def url(self) -> str:
        return self.path.format(id=self.id)

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data") or {}
        if name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}; it has {', '.join(sorted(data))}")

    def refresh(self) -> Resource:
        self.data = self._client.http.get(self.url)
        return self

    def __repr__(self) -> str:
        label = self.data.get("name") or self.data.get("kind") or ""
        status = self.data.get("status")
        extra = " ".join(str(x) for x in (label, status) if x)
        return f"<{type(self).__name__} #{self.data.get('id')}{' ' + extra if extra else ''}>"


def print_progress(job: dict) -> None:
    """The default progress display: one line per change, no dependency."""
    print(f"[{job.get('progress', 0):3d}%] {job.get('kind', 'job')} #{job.get('id')}: {job.get('message', '')}",
          file=sys.stderr, flush=True)  # fmt: skip


class Job(Resource):
    """Any long work. Its `status` and `progress` cover the child jobs it started (an
    experiment's trials), so waiting on it waits for everything the action began."""

    path = "/api/v1/jobs/{id}/"

    @property
    def done(self) -> bool:
        return self.data.get("status") in TERMINAL

    def wait(self, *, timeout: float | None = None, progress: Progress = None, poll: float = 30.0) -> Job:
        """Block until the job (children included) is finished; raise JobFailed if it failed.

        The server holds each request until the job finishes or `poll` seconds pass (a long
        poll, `?wait=`), so this loop sends about one request per `poll` seconds, never a
        busy loop. `progress`: a callable given the job on every change, or True to print.
        """
        report = print_progress if progress is True else (progress or None)
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            state = (self.data.get("status"), self.data.get("progress"), self.data.get("message"))
            if report and state != seen:
                report(self.data)
                seen = state
            if self.done:
                break
            wait = poll if deadline is None else min(poll, deadline - time.monotonic())
            if wait <= 0:
                raise WaitTimeout(self.data, timeout or 0)
            # A progress display wants news more often than a silent wait.
            wait = min(wait, 5.0) if report else wait
            self.data = self._client.http.get(
                self.url, params={"wait": f"{wait:.1f}"}, timeout=wait + self._client.http.timeout
            )
        if self.data["status"] != "succeeded":
            raise JobFailed(self.data)
        return self

    def cancel(self) -> Job:
        self.data = self._client.http.post(f"{self.url}cancel/").json()
        return self

    def events(self):
        """The job's server-sent events, as dicts with `event` and `data` (a generator)."""
        import json

        response = self._client.http.request(
            "GET", f"{self.url}events/", headers={"Accept": "text/event-stream"}, stream=True
        )
        event: dict[str, Any] = {}
        for line in response.iter_lines(decode_unicode=True):
            if not line:
                if "data" in event:
                    yield event
                event = {}
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])


def started(client: Client, response) -> tuple[dict, Job | None]:
    """The body of an action that started work, and its job: from `Location`, else `job_id`,
    else (older endpoints) the body itself when it is a job."""
    body = response.json() if response.content else {}
    location = response.headers.get("Location", "")
    job_id = None
    if "/jobs/" in location:
        job_id = int(location.rstrip("/").rsplit("/", 1)[-1])
    elif isinstance(body, dict) and isinstance(body.get("job_id"), int):
        job_id = body["job_id"]
    elif isinstance(body, dict) and "kind" in body and "progress" in body and response.status_code == 202:
        job_id = body["id"]
    if job_id is None:
        return body, None
    return body, Job(client, client.http.get(f"/api/v1/jobs/{job_id}/"))
