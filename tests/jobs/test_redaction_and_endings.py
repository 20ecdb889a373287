"""What a job shows of itself, and what its handler hears when it ends without success."""

from __future__ import annotations

import pytest
from django.utils import timezone

from datasets.models import DatasetVersion
from datasets.services import dataset_upload
from jobs.models import Job
from jobs.runner import execute
from tests.datasets.helpers import csv_upload, messy_frame

pytestmark = pytest.mark.django_db


def test_a_job_of_a_kind_this_process_does_not_know_shows_neither_params_nor_result(api, team):
    job = Job.objects.create(
        project=team.project,
        kind="retired.kind",
        status="succeeded",
        params={"token": "s3cr3t-param"},
        result={"password": "s3cr3t-result"},
    )
    for role in ("owner", "viewer"):
        body = api(role).get(f"/api/v1/jobs/{job.pk}/").data
        assert body["params"] == {} and body["result"] == {}
    assert "s3cr3t" not in api("owner").get(f"/api/v1/jobs/?project={team.project.pk}").content.decode()


def test_a_job_whose_worker_died_on_every_attempt_fails_its_version(team):
    # Claimed once more after its last attempt: the runner dead-letters it, and the hook fails
    # the version it was reading (it would otherwise stay "processing" forever).
    version = dataset_upload(project=team.project, name="p", created_by=team.editor, upload=csv_upload(messy_frame(10)))
    job = Job.objects.get(target_type="datasetversion", target_id=version.pk)
    Job.objects.filter(pk=job.pk).update(attempts=job.max_attempts, enqueued_at=timezone.now())
    assert execute(job.pk) == "done"
    job.refresh_from_db()
    version.refresh_from_db()
    assert job.status == "failed" and "Gave up after" in job.error
    assert version.status == "failed" and version.error == job.error
    assert not DatasetVersion.objects.filter(status="processing").exists()
