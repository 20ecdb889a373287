from __future__ import annotations

import pytest
from playwright.sync_api import expect

from deployments.models import Deployment, Prediction
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_editor_deploys_tries_creates_a_key_and_rolls_back(page, team, registered):
    v1 = registered()
    registered(seed=1)
    login(page, team.editor.username)
    page.goto(f"/projects/{team.project.pk}/models/")
    assert page.locator("#versions tr[data-version='2']").is_visible()
    page.click("#versions tr[data-version='1'] >> text=Deploy")
    expect(page.locator("#gate[data-passed='1']")).to_be_visible()
    page.fill("#name", "loans")
    page.click("#create-deployment button[type=submit]")
    page.wait_for_url("**/deployments/*/")
    d = Deployment.objects.get()
    assert d.model_version_id == v1.pk
    # try it: the sample instance is prefilled
    page.click("#try-send")
    page.wait_for_selector("#try-result")
    assert '"model_version": 1' in page.text_content("#try-result")
    assert Prediction.objects.filter(deployment=d).count() == 1
    # a key, shown once
    page.fill("#key-name", "loan app")
    page.click("#key-create")
    key = page.text_content("#new-key-value").strip()
    assert key.startswith("mlpk_")
    page.goto(f"/deployments/{d.pk}/")
    assert page.locator("#new-key").count() == 0 and key not in page.content()
    # promote v2, then roll back in one click
    page.select_option("#promote-version", label=page.locator("#promote-version option").first.text_content())
    page.click("#promote-form button[type=submit]")
    expect(page.locator("#active-version")).to_have_text("v2")  # the page after the redirect
    page.click("#rollback")
    expect(page.locator("#active-version")).to_have_text("v1")  # the page after the redirect
    assert page.locator("#history tr[data-action='rollback']").count() == 1
    d.refresh_from_db()
    assert d.model_version_id == v1.pk


def test_a_version_being_prepared_says_so_on_the_registry_pages(page, team, go_project, tmp_path):
    """Registration reads no data: the version's page and the registry say it is being prepared
    (the gate's first reason) until its job has built the schema and the drift reference."""
    import os
    from pathlib import Path

    from deployments.registry.services import model_version_register
    from tests.deployments.conftest import make_evaluated_run

    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    from django.db import transaction

    from jobs.models import Job
    from jobs.runner import job_cancel

    with transaction.atomic():
        version = model_version_register(run=make_evaluated_run(go_project, team.owner), actor=team.owner)
        # A worker left running by an earlier test would prepare it at once: hold the job back.
        job_cancel(job=Job.objects.get(kind="model_version.prepare", target_id=version.pk), actor=team.owner)
    login(page, team.editor.username)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/projects/{team.project.pk}/models/")
        row = page.locator("#versions tr[data-version='1']")
        assert "being prepared" in row.text_content()
        page.screenshot(path=str(shots / f"registry-pending-{width}.png"), full_page=True)
        page.goto(f"/models/{version.pk}/")
        assert "being prepared" in page.text_content("#gate-reasons")
        page.screenshot(path=str(shots / f"model-version-pending-{width}.png"), full_page=True)
