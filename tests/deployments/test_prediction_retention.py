"""The retention setting of the prediction store: API field, settings card, housekeeping task,
and the batch job's segments (real PostgreSQL, storage and browser)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from deployments import prediction_store
from deployments.models import Deployment, Prediction, PredictionSegment
from deployments.tasks import prediction_store_housekeeping
from tests.conftest import login, screenshots
from tests.deployments.test_views import client_for


@pytest.mark.django_db
def test_the_api_sets_and_clears_the_retention(team, api, deployment):
    url = f"/api/v1/deployments/{deployment.pk}/"
    assert api("outsider").patch(url, {"prediction_retention_days": 30}).status_code == 404
    assert api("viewer").patch(url, {"prediction_retention_days": 30}).status_code == 403
    for bad in (0, -3, 4000, "soon", 1.5):
        r = api("editor").patch(url, {"prediction_retention_days": bad}, format="json")
        assert r.status_code == 400 and "prediction_retention_days" in r.json()["errors"], r.content
    deployment.refresh_from_db()
    assert deployment.prediction_retention_days is None
    r = api("editor").patch(url, {"prediction_retention_days": 30}, format="json")
    assert r.status_code == 200 and r.json()["prediction_retention_days"] == 30
    assert api("viewer").get(url).json()["prediction_retention_days"] == 30
    r = api("editor").patch(url, {"prediction_retention_days": None}, format="json")
    assert r.status_code == 200 and r.json()["prediction_retention_days"] is None


@pytest.mark.django_db
def test_the_settings_card_changes_the_retention_for_managers_only(team, deployment):
    url = f"/deployments/{deployment.pk}/retention/"
    assert client_for(team.outsider).post(url, {"prediction_retention_days": "9"}).status_code == 404
    assert client_for(team.viewer).post(url, {"prediction_retention_days": "9"}).status_code == 403
    editor = client_for(team.editor)
    r = editor.post(url, {"prediction_retention_days": "nine"}, follow=True)
    assert "prediction_retention_days" in r.content.decode()
    r = editor.post(url, {"prediction_retention_days": "0"}, follow=True)
    assert "prediction_retention_days" in r.content.decode()
    deployment.refresh_from_db()
    assert deployment.prediction_retention_days is None
    editor.post(url, {"prediction_retention_days": "9"})
    deployment.refresh_from_db()
    assert deployment.prediction_retention_days == 9
    page = editor.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="retention-form"' in page and "9 days" in page
    assert 'id="retention-form"' not in client_for(team.viewer).get(f"/deployments/{deployment.pk}/").content.decode()


@pytest.mark.django_db
def test_housekeeping_applies_each_deployments_retention(team):
    from deployments.serving import prediction_log
    from tests.monitoring.helpers import make_deployment
    from tests.monitoring.test_prediction_store import queued_rows

    deployment = make_deployment(team.project, team.owner)

    prediction_log._insert(queued_rows(deployment, n=40, minutes_ago=60 * 24 * 20))
    prediction_log._insert(queued_rows(deployment, n=10, minutes_ago=1))
    old = PredictionSegment.objects.filter(deployment=deployment).order_by("min_time").first()
    Deployment.objects.filter(pk=deployment.pk).update(prediction_retention_days=10)
    totals = prediction_store_housekeeping()
    assert totals["predictions"] == 40 and totals["bytes_freed"] == old.bytes
    assert not default_storage.exists(old.path)
    assert Prediction.objects.filter(deployment=deployment).count() == 10


@pytest.mark.django_db
def test_a_batch_jobs_predictions_land_in_segments_and_a_redelivery_replaces_them(team, deployment, worker):
    import numpy as np
    import pyarrow as pa

    from deployments.batch.log_source import LogChunk, LogTarget, _segment_chunk, logged_count, logged_delete
    from jobs.models import Job

    job = Job.objects.create(project=team.project, kind="deployment.batch_predict", created_by=team.editor)
    target = LogTarget(deployment, deployment.model_version, job, ["no", "yes"])
    inputs = pa.table(
        {
            "age": [30, 40, 50],
            "income": [1.0, 2.5, 3.0],
            "score": [0.1, 0.2, 0.3],
            "color": ["red", "blue", "red"],
            "member": [True, False, True],
        }
    )
    chunk = LogChunk(inputs, np.array(["yes", "no", "yes"]), np.array([0.9, 0.8, 0.7]), None, 12.0)
    _segment_chunk(target, chunk)
    (seg,) = PredictionSegment.objects.filter(deployment=deployment)
    assert seg.rows == seg.segment_only_rows == 3 and seg.caller == f"job:{job.pk}"
    assert logged_count(deployment, job) == 3
    assert not Prediction.objects.filter(deployment=deployment).exists()  # the segment is their record
    start = timezone.now() - timedelta(hours=1)
    table = prediction_store.window_table(deployment, start, timezone.now(), ["income", "__prediction"])
    assert sorted(table.column("income").to_pylist()) == [1.0, 2.5, 3.0]
    # a re-delivered job starts over: the first delivery's rows and segment go
    logged_delete(deployment=deployment, job=job)
    assert logged_count(deployment, job) == 0
    assert not PredictionSegment.objects.filter(deployment=deployment).exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_storage_card_in_a_browser(page, team, deployment):
    login(page, team.editor.username)
    page.goto(f"/deployments/{deployment.pk}/#storage")
    assert "365 days" in page.text_content("#retention-now")
    page.fill("#retention-days", "30")
    page.click("#retention-submit")
    page.wait_for_url("**#storage")
    assert "30 days" in page.text_content("#retention-now")
    page.locator("#storage").scroll_into_view_if_needed()
    for path in screenshots(page, "deployment-storage"):
        assert path.exists()
    for width in (1280, 390):  # the card alone, to look at closely
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#storage").screenshot(path=str(path.parent / f"deployment-storage-card-{width}.png"))
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.django_db
def test_batch_files_past_their_retention_are_deleted_and_the_download_says_410(team, api, deployment, settings):
    from django.core.files.base import ContentFile

    from deployments.batch.services import BATCH_JOB
    from jobs.models import Job

    settings.BATCH_FILE_RETENTION_DAYS = 30

    def batch_job(days_ago: int) -> Job:
        inp = default_storage.save(f"projects/{team.project.pk}/batch-inputs/in.csv", ContentFile(b"age\n1\n"))
        out = default_storage.save(f"projects/{team.project.pk}/batch-outputs/out.csv", ContentFile(b"age,p\n1,no\n"))
        return Job.objects.create(
            project=team.project,
            kind=BATCH_JOB,
            created_by=team.editor,
            target_type="deployment",
            target_id=deployment.pk,
            status="succeeded",
            params={"input_key": inp, "input_format": "csv"},
            result={"output_key": out, "output_format": "csv", "rows": 1},
            finished_at=timezone.now() - timedelta(days=days_ago),
        )

    old, recent = batch_job(31), batch_job(29)
    old_keys = [old.params["input_key"], old.result["output_key"]]
    url = f"/api/v1/deployments/{deployment.pk}/batch/{old.pk}/download/"
    assert api("viewer").get(url).status_code == 200  # before: downloadable

    totals = prediction_store_housekeeping()
    assert totals["batch_jobs_expired"] == 1 and totals["batch_files_deleted"] == 2
    assert not any(default_storage.exists(k) for k in old_keys)  # the storage is really freed
    old.refresh_from_db()
    recent.refresh_from_db()
    assert "output_key" not in old.result and old.result["rows"] == 1 and old.result["files_expired_at"]
    assert default_storage.exists(recent.result["output_key"]) and default_storage.exists(recent.params["input_key"])

    r = api("viewer").get(url)
    assert r.status_code == 410 and "BATCH_FILE_RETENTION_DAYS" in r.json()["detail"]
    assert api("outsider").get(url).status_code == 404  # the tenant wall first
    page = client_for(team.viewer)
    assert page.get(f"/deployments/{deployment.pk}/batch/{old.pk}/download/").status_code == 410
    assert "deleted by retention" in client_for(team.editor).get(f"/deployments/{deployment.pk}/").content.decode()
    assert prediction_store_housekeeping()["batch_jobs_expired"] == 0  # once


@pytest.mark.django_db
def test_batch_segments_expire_with_the_retention_and_are_never_compacted(team, deployment):
    import numpy as np
    import pyarrow as pa

    from deployments.batch.log_source import LogChunk, LogTarget, _segment_chunk
    from jobs.models import Job

    inputs = pa.table({"age": [30, 40], "income": [1.0, 2.0], "score": [0.1, 0.2], "color": ["red", "blue"]})
    for _ in range(3):
        job = Job.objects.create(project=team.project, kind="deployment.batch_predict", created_by=team.editor)
        chunk = LogChunk(inputs, np.array(["yes", "no"]), np.array([0.9, 0.8]), np.array([[0.1, 0.9], [0.8, 0.2]]), 1.0)
        _segment_chunk(LogTarget(deployment, deployment.model_version, job, ["no", "yes"]), chunk)
    three_hours_ago = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    PredictionSegment.objects.update(hour=three_hours_ago, min_time=three_hours_ago, max_time=three_hours_ago)
    assert prediction_store.compact(deployment) == 0  # a chunk's segment is counted from its row: left whole
    old = PredictionSegment.objects.order_by("pk").first()
    long_ago = timezone.now() - timedelta(days=400)
    PredictionSegment.objects.filter(pk=old.pk).update(hour=long_ago, min_time=long_ago, max_time=long_ago)
    totals = prediction_store.retention_apply(deployment)
    assert totals["predictions"] == 2 and totals["segments"] == 1  # its rows count as deleted predictions
    assert not default_storage.exists(old.path) and PredictionSegment.objects.count() == 2
