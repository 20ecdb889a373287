from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Prediction
from tests.conftest import wait_for_job
from tests.deployments.conftest import FEATURES, loan_frame


def _upload(frame: pd.DataFrame, fmt: str) -> SimpleUploadedFile:
    buf = io.BytesIO()
    if fmt == "csv":
        frame.to_csv(buf, index=False)
    else:
        frame.to_parquet(buf, index=False)
    return SimpleUploadedFile(f"rows.{fmt}", buf.getvalue())


@pytest.mark.parametrize(("in_fmt", "out_fmt"), [("csv", "csv"), ("parquet", "parquet")])
def test_batch_over_an_upload_scores_every_row_and_logs_them(
    team, api, deployment, worker, in_fmt, out_fmt, monkeypatch
):
    monkeypatch.setattr("deployments.batch_jobs.CHUNK_ROWS", 70)  # several chunks in a small file
    frame = loan_frame(250, seed=5)[FEATURES]
    frame.loc[3, "color"] = "purple"  # refused row: unknown category
    frame.loc[4, "color"] = "=HYPERLINK(1)"  # formula injection attempt, also unknown
    url = f"/api/v1/deployments/{deployment.pk}/batch/"
    r = api("editor").post(url, {"file": _upload(frame, in_fmt), "output_format": out_fmt}, format="multipart")
    assert r.status_code == 202, r.content
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    assert job.progress == 100 and job.result["rows"] == 250 and job.result["errors"] == 2
    listed = api("viewer").get(url).json()
    assert listed[0]["download_url"]
    assert api("outsider").get(listed[0]["download_url"]).status_code == 404
    d = api("viewer").get(listed[0]["download_url"])
    assert d.status_code == 200
    content = b"".join(d.streaming_content)
    out = pd.read_csv(io.BytesIO(content)) if out_fmt == "csv" else pd.read_parquet(io.BytesIO(content))
    assert len(out) == 250
    assert {"prediction", "confidence", "proba_no", "proba_yes", "error"} <= set(out.columns)
    assert out["prediction"].notna().sum() == 248
    assert "unknown category" in str(out.loc[3, "error"])
    if out_fmt == "csv":
        assert str(out.loc[4, "color"]).startswith("'=")
    logged = Prediction.objects.filter(deployment=deployment, source="batch")
    assert logged.count() == 248
    row = logged.first()
    assert set(row.inputs) == set(FEATURES) and row.prediction in ("yes", "no") and 0.5 <= row.confidence <= 1
    assert set(row.probabilities) == {"no", "yes"} and row.caller == f"job:{job.pk}"


def test_batch_over_a_dataset_version(team, api, deployment, worker):
    dv = deployment.model_version.dataset_version
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/batch/", {"dataset_version": dv.pk}, format="json")
    assert r.status_code == 202, r.content
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    assert job.result["rows"] == 300 and job.result["errors"] == 0
    assert Prediction.objects.filter(deployment=deployment, source="batch").count() == 300


def test_batch_permissions_and_bad_input(team, api, deployment, registered, settings):
    url = f"/api/v1/deployments/{deployment.pk}/batch/"
    frame = loan_frame(10)[FEATURES]
    assert api("outsider").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 404
    assert api("viewer").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 403
    assert api("editor").post(url, {}, format="multipart").status_code == 400
    r = api("editor").post(url, {"file": _upload(frame, "csv"), "output_format": "xlsx"}, format="multipart")
    assert r.status_code == 400 and "output_format" in r.json()["errors"]
    bad = SimpleUploadedFile("rows.parquet", b"definitely not parquet")
    assert api("editor").post(url, {"file": bad}, format="multipart").status_code == 400
    settings.MAX_UPLOAD_BYTES = 100
    assert api("editor").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 413
    # a dataset version of another project
    r = api("editor").post(url, {"dataset_version": 999999}, format="json")
    assert r.status_code == 400 and "dataset_version" in r.json()["errors"]
    from jobs.models import Job

    assert not Job.objects.filter(kind="deployment.batch").exists()


def test_batch_with_missing_columns_fails_the_job_with_a_clear_error(team, api, deployment, worker):
    frame = loan_frame(20)[["age", "income"]]
    r = api("editor").post(
        f"/api/v1/deployments/{deployment.pk}/batch/", {"file": _upload(frame, "csv")}, format="multipart"
    )
    job = wait_for_job(r.json()["id"])
    assert job.status == "failed" and "score" in job.error and "color" in job.error
    assert not Prediction.objects.exists()
