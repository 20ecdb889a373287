"""The job pages show the rolled-up status: a coordinator whose children still run is running."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.conftest import login

pytestmark = [pytest.mark.browser]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_coordinator_page_and_jobs_tab_show_children_at_work(page, team, transactional_db):
    parent = Job.objects.create(
        project=team.project,
        kind="experiment.train",
        status=JobStatus.SUCCEEDED,
        progress=100,
        message="Done",
        finished_at=timezone.now(),
        result={"children_expected": 4},
    )
    Job.objects.create(project=team.project, kind="experiment.trial", parent=parent, status="succeeded", progress=100)
    Job.objects.create(
        project=team.project,
        kind="experiment.trial",
        parent=parent,
        status="running",
        progress=55,
        message="random_forest: fold 3 of 5",
        heartbeat_at=timezone.now(),
    )
    login(page, "eddie")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/jobs/{parent.pk}/")
        badge = page.locator(".job-progress [data-job-status]")
        assert badge.inner_text() == "running"
        assert "fold 3 of 5" in page.inner_text(".job-progress [data-job-message]")
        assert "2 of 4 started" in page.inner_text("dl.kv")
        assert page.locator("button:text('Cancel job')").count() == 1
        page.screenshot(path=str(SHOTS / f"job-coordinator-{width}.png"), full_page=True)
        page.goto(f"/projects/{team.project.pk}/jobs/")
        row = page.locator(f"tr[data-job-id='{parent.pk}'] [data-job-status]")
        assert row.inner_text() == "running"
        page.screenshot(path=str(SHOTS / f"jobs-tab-{width}.png"), full_page=True)
