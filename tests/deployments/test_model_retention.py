"""Artefact retention for old model versions: the hourly housekeeping deletes the files of versions
nothing can serve again; the rows, metrics and lineage stay, and nothing can deploy them after."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from playwright.sync_api import expect

from deployments.models import Deployment, ModelVersion
from deployments.registry.services import model_versions_archive
from deployments.rollout.services import (
    deployment_create,
    deployment_promote,
    deployment_retire,
    deployment_rollback,
    deployment_set_shadow,
)
from deployments.tasks import prediction_store_housekeeping
from mlplatform.errors import Conflict
from tests.conftest import login, screenshots
from tests.deployments.test_views import client_for

pytestmark = pytest.mark.django_db


def files_of(version: ModelVersion) -> list[str]:
    return [version.artifact_key, version.reference_key, version.reference_stats["arrays_key"]]


def age(versions, days: int) -> None:
    ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).update(
        created_at=timezone.now() - timedelta(days=days)
    )


@pytest.fixture
def retention(settings):
    settings.MODEL_VERSION_RETENTION_DAYS = 30
    settings.MODEL_VERSION_KEEP_LATEST = 1
    return settings


def test_only_versions_nothing_can_serve_again_lose_their_files(
    retention, team, registered, api, django_capture_on_commit_callbacks
):
    v1, v2, v3, v4, v5 = (registered(seed=k) for k in range(5))
    live = deployment_create(project=team.project, actor=team.editor, name="live", model_version=v1)
    live = deployment_promote(deployment=live, actor=team.editor, model_version=v2)  # v1: its rollback target
    gone = deployment_create(project=team.project, actor=team.editor, name="gone", model_version=v3)
    deployment_retire(deployment=gone, actor=team.owner, reason="replaced by the live deployment")
    shadowed = deployment_create(project=team.project, actor=team.editor, name="shadowed", model_version=v2)
    deployment_set_shadow(deployment=shadowed, actor=team.editor, model_version=v4)
    age([v1, v2, v3, v4, v5], days=40)
    kept = {v.pk: files_of(v) for v in (v1, v2, v4, v5)}
    deleted = files_of(v3)
    assert all(default_storage.exists(k) for k in deleted)

    with django_capture_on_commit_callbacks(execute=True):  # the files go once the archive commits
        totals = prediction_store_housekeeping()  # the hourly beat task runs the model retention too

    assert totals["model_versions_archived"] == 1 and totals["model_files_deleted"] == 3
    assert not any(default_storage.exists(k) for k in deleted)  # the storage is really freed
    assert all(default_storage.exists(k) for keys in kept.values() for k in keys)
    v3.refresh_from_db()
    assert v3.archived_at is not None and v3.metrics["test"] and v3.lineage["run"]["id"]  # the row stays
    assert ModelVersion.objects.filter(archived_at__isnull=False).count() == 1
    assert model_versions_archive()["model_versions_archived"] == 0  # once

    # The retired deployment keeps its history; nothing points a deployment at v3 again, override or not.
    with pytest.raises(Conflict, match="deleted by the model retention") as refused:
        deployment_promote(deployment=live, actor=team.owner, model_version=v3, justification="x" * 40)
    assert refused.value.field == "model_version"
    with pytest.raises(Conflict, match="deleted by the model retention"):
        deployment_create(project=team.project, actor=team.owner, name="again", model_version=v3)
    with pytest.raises(Conflict, match="deleted by the model retention"):
        deployment_set_shadow(deployment=live, actor=team.editor, model_version=v3)
    live.refresh_from_db()
    assert live.model_version_id == v2.pk and live.shadow_model_version_id is None
    assert not Deployment.objects.filter(name="again").exists()
    # Rollback still works: its target was protected.
    assert deployment_rollback(deployment=live, actor=team.editor).model_version_id == v1.pk

    r = api("viewer").get(f"/api/v1/models/{v3.pk}/download/")
    assert r.status_code == 410 and "MODEL_VERSION_RETENTION_DAYS" in r.json()["detail"]
    assert api("outsider").get(f"/api/v1/models/{v3.pk}/download/").status_code == 404  # the tenant wall first
    body = api("viewer").get(f"/api/v1/models/{v3.pk}/").json()
    assert body["archived_at"] and body["download_url"] is None
    assert api("viewer").get(f"/api/v1/models/{v2.pk}/").json()["download_url"]
    r = api("editor").post(f"/api/v1/deployments/{gone.pk}/snapshot/", {}, format="json")
    assert r.status_code == 409 and "drift reference was deleted" in r.json()["detail"]
    page = client_for(team.viewer)
    assert page.get(f"/models/{v3.pk}/download/").status_code == 410
    html = page.get(f"/models/{v3.pk}/").content.decode()
    assert 'id="archived"' in html and 'id="download"' not in html
    registry = client_for(team.editor).get(f"/projects/{team.project.pk}/models/").content.decode()
    assert "files deleted" in registry and f"?version={v3.pk}" not in registry and f"?version={v5.pk}" in registry


def test_young_versions_and_the_newest_are_kept(retention, team, registered, django_capture_on_commit_callbacks):
    v1, v2, v3 = (registered(seed=k) for k in range(3))
    age([v1], days=29)  # younger than the retention
    age([v2, v3], days=90)  # v3 is the newest: KEEP_LATEST
    with django_capture_on_commit_callbacks(execute=True):
        assert model_versions_archive()["model_versions_archived"] == 1
    assert not default_storage.exists(v2.artifact_key)
    assert [v.version for v in ModelVersion.objects.filter(archived_at__isnull=False)] == [v2.version]
    assert default_storage.exists(v1.artifact_key) and default_storage.exists(v3.artifact_key)


def test_off_by_default(settings, team, registered):
    assert settings.MODEL_VERSION_RETENTION_DAYS == 0  # model files are kept unless an operator says otherwise
    v1 = registered()
    registered(seed=1)
    age([v1], days=3000)
    assert model_versions_archive() == {"model_versions_archived": 0, "model_files_deleted": 0}
    assert default_storage.exists(v1.artifact_key)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_registry_and_the_version_page_say_the_files_are_gone(page, settings, team, registered):
    settings.MODEL_VERSION_RETENTION_DAYS = 30
    settings.MODEL_VERSION_KEEP_LATEST = 1
    old = registered()
    registered(seed=1)
    age([old], days=60)
    assert model_versions_archive()["model_versions_archived"] == 1
    login(page, team.editor.username)
    page.goto(f"/projects/{team.project.pk}/models/")
    row = page.locator("#versions tr[data-version='1']")
    assert "files deleted" in row.text_content() and row.locator("text=Deploy").count() == 0
    assert "deleted by the model retention" in row.text_content()  # the gate's first reason
    screenshots(page, "registry-archived")
    page.goto(f"/models/{old.pk}/")
    expect(page.locator("#archived")).to_contain_text("MODEL_VERSION_RETENTION_DAYS")
    assert page.locator("#download").count() == 0 and page.locator("#usage-snippet").count() == 0
    assert page.locator("#deploy-form").count() == 0 and page.locator("#prepare").count() == 0
    screenshots(page, "model-version-archived")
