"""Bad input: each gets a clear 4xx or a failed job naming the problem, and leaves versions untouched."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from datasets.models import Dataset, DatasetVersion
from jobs.models import Job
from tests.conftest import wait_for_job
from tests.datasets.helpers import csv_upload, messy_frame, parquet_bytes, wait_version

pytestmark = pytest.mark.worker
URL = "/api/v1/datasets/"


def upload(api, team, data: bytes, filename="x.csv", name="bad"):
    file = SimpleUploadedFile(filename, data)
    return api("editor").post(URL, {"project": team.project.pk, "name": name, "file": file}, format="multipart")


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a.csv", "a,b\n1,2\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"a,b,c\n", "header.csv", "header but no rows"),
        (b"a,b\n1,2\n3,4,5,6\n5,6\n", "ragged.csv", "Ragged rows"),
        (b"\x00\x01\x02\x03binary\x00\xff" * 100, "bin.csv", "binary"),
        (zip_bytes(), "really_a_zip.parquet", "zip archive"),
        (b"PAR1garbagegarbage", "trunc.parquet", "truncated or corrupt"),
        (b"1,2,3\n4,5,6\n", "noheader.csv", "header row is required"),
        (b'{"a": 1}\n{"a": \n', "bad.jsonl", "not valid JSON"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "img.csv", "PNG"),
    ],
)
def test_bad_files_fail_the_job_with_a_message(api, team, worker, data, filename, message):
    r = upload(api, team, data, filename)
    assert r.status_code == 202, r.data
    version = wait_version(r.data["latest_version"]["id"], profiled=False)
    assert version.status == "failed"
    assert message.lower() in version.error.lower(), version.error
    job = Job.objects.get(target_id=version.pk, kind="dataset.ingest")
    job = wait_for_job(job.pk)  # the version fails inside the job, a moment before the job ends
    assert job.status == "failed"
    assert message.lower() in job.error.lower()
    detail = api("viewer").get(f"/api/v1/dataset-versions/{version.pk}/").data
    assert detail["status"] == "failed" and message.lower() in detail["error"].lower()


def test_empty_file_is_400_and_creates_nothing(api, team, db):
    r = upload(api, team, b"", "empty.csv")
    assert r.status_code == 400
    assert "file" in r.data["errors"]
    assert not Dataset.objects.filter(project=team.project).exists()


def test_failed_new_version_leaves_existing_versions_untouched(api, team, worker):
    r = api("editor").post(
        URL, {"project": team.project.pk, "name": "keep", "file": csv_upload(messy_frame(40))}, format="multipart"
    )
    v1 = wait_version(r.data["latest_version"]["id"])
    before = (v1.status, v1.storage_key, v1.content_hash, v1.row_count)
    r2 = api("editor").post(
        f"/api/v1/datasets/{v1.dataset_id}/versions/",
        {"file": SimpleUploadedFile("x.csv", b"a,b\n1\n1,2,3\n")},
        format="multipart",
    )
    v2 = wait_version(r2.data["id"], profiled=False)
    assert v2.status == "failed"
    v1.refresh_from_db()
    assert (v1.status, v1.storage_key, v1.content_hash, v1.row_count) == before


@override_settings(MAX_UPLOAD_BYTES=2048)
def test_file_over_the_limit_is_413(api, team, db):
    big = b"a,b\n" + b"1,2\n" * 2000
    r = upload(api, team, big, "big.csv")
    assert r.status_code == 413, r.content
    assert not Dataset.objects.filter(project=team.project).exists()


def test_two_gigabyte_declared_body_is_413_before_reading(api, team, db):
    r = api("editor").generic(
        "POST", URL, b"x", content_type="multipart/form-data; boundary=abc", CONTENT_LENGTH=str(2 * 1024**3)
    )
    assert r.status_code == 413


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/data.csv",
        "http://2130706433/data.csv",
        "http://[::1]/data.csv",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x7f.1/x.csv",
        "http://10.0.0.5/x.csv",
        "http://[::ffff:127.0.0.1]/x.csv",
        "http://localhost/x.csv",
        "file:///etc/passwd",
        "ftp://example.com/x.csv",
        "http://user:pw@example.com/x.csv",
    ],
)
def test_private_and_odd_urls_are_400(api, team, db, url):
    r = api("editor").post(URL, {"project": team.project.pk, "name": "u", "source_url": url}, format="json")
    assert r.status_code == 400, r.data
    assert "source_url" in r.data["errors"]
    assert not Dataset.objects.filter(project=team.project).exists()


def test_filename_never_reaches_the_disk_path(api, team, worker):
    for i, name in enumerate(["../../evil.csv", "..\\..\\evil.csv", "%252e%252e%252fevil.csv", "/etc/cron.d/x.csv"]):
        r = api("editor").post(
            URL,
            {"project": team.project.pk, "name": f"t{i}", "file": csv_upload(messy_frame(20), name=name)},
            format="multipart",
        )
        assert r.status_code == 202
        v = wait_version(r.data["latest_version"]["id"])
        for key in (v.storage_key, v.upload_key):
            assert "evil" not in key and ".." not in key and "%" not in key and "cron" not in key
        assert v.storage_key.startswith(f"projects/{team.project.pk}/datasets/")


def test_xss_in_column_names_and_cells_is_escaped_in_the_ui(client, team, worker):
    import pandas as pd

    frame = pd.DataFrame({"<script>alert(1)</script>": ["<img src=x onerror=alert(2)>"] * 30, "b": range(30)})
    from datasets.services import dataset_create, version_create_from_frame

    ds = dataset_create(project=team.project, name="<b>xss</b>", created_by=team.owner)
    v = version_create_from_frame(dataset=ds, frame=frame, created_by=team.owner)
    wait_version(v.pk)
    client.force_login(team.viewer)
    for url in (f"/projects/{team.project.pk}/datasets/", f"/datasets/{ds.pk}/", f"/dataset-versions/{v.pk}/"):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "&lt;b&gt;xss&lt;/b&gt;" in html
        if "dataset-versions" in url:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the column table, escaped
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x onerror" not in html
        assert "<b>xss</b>" not in html


def test_export_escapes_formula_injection(api, team, worker):
    import pandas as pd

    from datasets.services import dataset_create, version_create_from_frame

    frame = pd.DataFrame({"=cmd": ["=1+1", "+SUM(A1)", "-2+3", "@foo", "plain", "-5"], "n": [1, 2, 3, 4, 5, 6]})
    ds = dataset_create(project=team.project, name="f", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=frame, created_by=team.owner).pk)
    r = api("viewer").get(f"/api/v1/dataset-versions/{v.pk}/export/")
    assert r.status_code == 200
    body = b"".join(r.streaming_content).decode()
    lines = list(csv.reader(io.StringIO(body)))
    assert lines[0] == ["'=cmd", "n"]
    assert lines[1:] == [
        ["'=1+1", "1"],
        ["'+SUM(A1)", "2"],
        ["'-2+3", "3"],
        ["'@foo", "4"],
        ["plain", "5"],
        ["-5", "6"],
    ]


def test_parquet_upload_is_read_with_a_fixed_pyarrow(db):
    import pyarrow

    major, minor, patch = (int(x) for x in pyarrow.__version__.split(".")[:3])
    assert (major, minor, patch) >= (14, 0, 1)  # CVE-2023-47248


def test_parquet_with_nested_columns_fails_clearly(api, team, worker):
    import pandas as pd

    r = upload(api, team, parquet_bytes(pd.DataFrame({"a": [[1, 2], [3]], "b": [1, 2]})), "n.parquet")
    v = wait_version(r.data["latest_version"]["id"], profiled=False)
    assert v.status == "failed" and "nested" in v.error


def test_versions_count_unchanged_after_bad_url(api, team, worker):
    r = api("editor").post(
        URL, {"project": team.project.pk, "name": "k", "file": csv_upload(messy_frame(20))}, format="multipart"
    )
    v = wait_version(r.data["latest_version"]["id"])
    bad = api("editor").post(
        f"/api/v1/datasets/{v.dataset_id}/versions/", {"source_url": "http://169.254.169.254/"}, format="json"
    )
    assert bad.status_code == 400 and "source_url" in bad.data["errors"]
    assert DatasetVersion.objects.filter(dataset_id=v.dataset_id).count() == 1


@override_settings(PROJECT_STORAGE_QUOTA_BYTES=1500)
def test_upload_over_the_project_quota_is_413(api, team, db):
    from datasets.models import DatasetVersion as DV

    ds = Dataset.objects.create(project=team.project, name="big")
    DV.objects.create(project=team.project, dataset=ds, number=1, source="upload", status="ready", size_bytes=1000)
    r = upload(api, team, b"a,b\n" + b"1,2\n" * 200, "q.csv", name="more")
    assert r.status_code == 413 and "quota" in r.data["detail"]
    assert not Dataset.objects.filter(name="more").exists()


def test_conflicting_name_stores_no_file(api, team, db):
    import os

    from django.conf import settings

    Dataset.objects.create(project=team.project, name="taken")
    uploads = os.path.join(settings.STORAGES["default"]["OPTIONS"]["location"], f"projects/{team.project.pk}/uploads")
    before = set(os.listdir(uploads)) if os.path.isdir(uploads) else set()
    r = upload(api, team, b"a,b\n1,2\n", "x.csv", name="taken")
    assert r.status_code == 409
    after = set(os.listdir(uploads)) if os.path.isdir(uploads) else set()
    assert after == before


def test_ingest_redelivery_changes_nothing(api, team, worker):
    from django.db import transaction

    from jobs.runner import job_enqueue

    r = api("editor").post(
        URL, {"project": team.project.pk, "name": "once", "file": csv_upload(messy_frame(30))}, format="multipart"
    )
    v = wait_version(r.data["latest_version"]["id"])
    with transaction.atomic():
        job = job_enqueue(project=team.project, kind="dataset.ingest", params={"version_id": v.pk}, target=v)
    done = wait_for_job(job.pk)
    assert done.status == "succeeded" and done.result["already"] is True
    again = DatasetVersion.objects.get(pk=v.pk)
    assert (again.status, again.storage_key, again.content_hash, again.row_count) == (
        v.status,
        v.storage_key,
        v.content_hash,
        v.row_count,
    )
