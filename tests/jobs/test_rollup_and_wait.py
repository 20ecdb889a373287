"""One job handle per action: a parent's status covers its children; clients wait without
busy polling (`?wait=` long poll, server-sent events)."""

from __future__ import annotations

import json
import time

import pytest
from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobStatus
from jobs.runner import job_enqueue


def _parent_with_children(team, *child_states: tuple[str, int], expected: int | None = None) -> tuple[Job, list[Job]]:
    """A coordinator whose own step succeeded, with children in the given (status, progress)."""
    parent = Job.objects.create(
        project=team.project,
        kind="diagnostics.sleep",
        status=JobStatus.SUCCEEDED,
        progress=100,
        finished_at=timezone.now(),
        result={"children_expected": expected} if expected else {},
    )
    children = [
        Job.objects.create(project=team.project, kind="diagnostics.sleep", parent=parent, status=s, progress=p)
        for s, p in child_states
    ]
    return parent, children


@pytest.mark.django_db
def test_parent_reads_running_while_a_child_runs_with_progress_over_its_children(team, api):
    parent, _children = _parent_with_children(
        team, ("succeeded", 100), ("running", 50), ("queued", 0), ("queued", 0), expected=5
    )
    viewer = api("viewer")
    body = viewer.get(f"/api/v1/jobs/{parent.pk}/").json()
    assert body["status"] == "running" and body["own_status"] == "succeeded"
    # (own 100 + 100 + 50 + 0 + 0) / (1 + 5 expected children) = 41
    assert body["progress"] == 41
    assert body["children"] == {"total": 4, "expected": 5, "active": 3, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert body["message"].startswith("1 of 5 child jobs done")
    running = viewer.get("/api/v1/jobs/", {"project": team.project.pk, "status": "running"}).json()["results"]
    assert parent.pk in [j["id"] for j in running]
    listed = next(j for j in running if j["id"] == parent.pk)
    assert listed["progress"] == 41 and listed["status"] == "running"
    assert parent.pk not in [j["id"] for j in viewer.get("/api/v1/jobs/", {"status": "succeeded"}).json()["results"]]

    Job.objects.filter(parent=parent).update(status=JobStatus.SUCCEEDED, progress=100)
    body = viewer.get(f"/api/v1/jobs/{parent.pk}/").json()
    assert body["status"] == "succeeded" and body["progress"] == 100
    assert body["children"]["succeeded"] == 4 and body["children"]["active"] == 0


@pytest.mark.django_db
def test_a_failed_parent_stays_failed_and_a_job_without_children_is_unchanged(team, api):
    parent, _ = _parent_with_children(team, ("running", 10))
    Job.objects.filter(pk=parent.pk).update(status=JobStatus.FAILED, error="boom")
    assert api("viewer").get(f"/api/v1/jobs/{parent.pk}/").json()["status"] == "failed"
    lone = Job.objects.create(project=team.project, kind="diagnostics.sleep", status=JobStatus.RUNNING, progress=30)
    body = api("viewer").get(f"/api/v1/jobs/{lone.pk}/").json()
    assert (body["status"], body["progress"], body["children"]) == ("running", 30, None)


@pytest.mark.django_db
def test_cancelling_a_finished_coordinator_reads_cancelled_once_its_children_stop(team, api):
    parent, _children = _parent_with_children(team, ("succeeded", 100), ("queued", 0), ("running", 40))
    assert api("viewer").post(f"/api/v1/jobs/{parent.pk}/cancel/").status_code == 403
    body = api("editor").post(f"/api/v1/jobs/{parent.pk}/cancel/").json()
    assert body["status"] == "running"  # the running child was asked to stop, it has not yet
    Job.objects.filter(parent=parent, status=JobStatus.RUNNING).update(status=JobStatus.CANCELLED)
    body = api("viewer").get(f"/api/v1/jobs/{parent.pk}/").json()
    assert body["status"] == "cancelled" and body["own_status"] == "succeeded"
    assert body["children"]["cancelled"] == 2


@pytest.mark.django_db
def test_wait_parameter_is_checked_and_outsiders_get_404(team, api):
    job = Job.objects.create(project=team.project, kind="diagnostics.sleep", status=JobStatus.SUCCEEDED)
    r = api("viewer").get(f"/api/v1/jobs/{job.pk}/", {"wait": "soon"})
    assert r.status_code == 400 and "wait" in r.json()["errors"]
    assert api("viewer").get(f"/api/v1/jobs/{job.pk}/", {"wait": "-1"}).status_code == 400
    assert api("outsider").get(f"/api/v1/jobs/{job.pk}/", {"wait": "5"}).status_code == 404
    assert api("outsider").get(f"/api/v1/jobs/{job.pk}/events/").status_code == 404
    # a finished job answers at once, whatever the wait
    started = time.monotonic()
    assert api("viewer").get(f"/api/v1/jobs/{job.pk}/", {"wait": "30"}).json()["status"] == "succeeded"
    assert time.monotonic() - started < 2


def _enqueue(team, **params) -> Job:
    with transaction.atomic():
        return job_enqueue(project=team.project, kind="diagnostics.sleep", created_by=team.owner, params=params)


@pytest.mark.worker
def test_long_poll_returns_when_the_job_finishes_not_before_and_not_long_after(worker, team, api):
    job = _enqueue(team, seconds=1.5)
    started = time.monotonic()
    body = api("viewer").get(f"/api/v1/jobs/{job.pk}/", {"wait": "20"}).json()
    elapsed = time.monotonic() - started
    assert body["status"] == "succeeded" and body["progress"] == 100
    assert 1.0 < elapsed < 10, elapsed
    # a wait shorter than the job answers with the job still running
    slow = _enqueue(team, seconds=4)
    started = time.monotonic()
    body = api("viewer").get(f"/api/v1/jobs/{slow.pk}/", {"wait": "0.6"}).json()
    assert body["status"] in ("queued", "running")
    assert 0.5 < time.monotonic() - started < 3


@pytest.mark.worker
def test_server_sent_events_stream_progress_then_end(worker, team, api):
    job = _enqueue(team, seconds=1.5)
    response = api("viewer").get(f"/api/v1/jobs/{job.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    text = b"".join(response.streaming_content).decode()
    events = [block for block in text.split("\n\n") if block.startswith(("id:", "event:"))]
    names = [next(line[7:] for line in e.splitlines() if line.startswith("event: ")) for e in events]
    assert names[-1] == "end" and "progress" in names
    payloads = [json.loads(next(line[6:] for line in e.splitlines() if line.startswith("data: "))) for e in events]
    assert payloads[-1]["status"] == "succeeded"
    progress = [p["progress"] for p in payloads]
    assert progress == sorted(progress) and len(set(progress)) > 2  # it moved, monotonically
