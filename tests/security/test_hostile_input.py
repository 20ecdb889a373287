"""Hostile files and bodies against a running copy, and every way a job can end.

Files go through the API to the real worker; the limits are the settings' (defaults unless a
test lowers one to keep its file small). Bodies go over real HTTP to every write endpoint of
the live OpenAPI schema.
"""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from datasets.models import DatasetVersion
from datasets.services import dataset_upload
from jobs.models import Job
from jobs.runner import job_cancel, sweep_stale_jobs
from tests.datasets.helpers import csv_upload, messy_frame, wait_version
from tests.security.outbound_helpers import Remote

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(api, team, name: str, data: bytes, filename: str):
    r = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": name, "file": SimpleUploadedFile(filename, data)},
        format="multipart",
    )
    assert r.status_code == 202, r.data
    return wait_version(r.data["latest_version"]["id"], timeout=120, profiled=False)


def _parquet(table: pa.Table, **kwargs) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **kwargs)
    return buffer.getvalue()


@pytest.mark.worker
def test_json_lines_nested_5000_deep_fails_its_version_naming_the_limit(api, team, worker):
    deep = b'{"a": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}\n"
    v = _upload(api, team, "deep", b'{"a": 1}\n' + deep, "rows.jsonl")
    assert v.status == "failed" and "Line 2" in v.error and "MAX_JSON_DEPTH" in v.error
    # Deep enough to pass the decoder's own recursion limit, still over ours.
    v = _upload(api, team, "deep70", b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}\n", "rows.jsonl")
    assert v.status == "failed" and "MAX_JSON_DEPTH" in v.error


@pytest.mark.worker
def test_a_20000_column_csv_is_refused_before_parsing(api, team, worker):
    header = ",".join(f"c{i}" for i in range(20_000))
    data = (header + "\n" + "\n".join(",".join("1" * 1 for _ in range(20_000)) for _ in range(5)) + "\n").encode()
    v = _upload(api, team, "wide", data, "wide.csv")
    assert v.status == "failed" and "20000 columns" in v.error and "MAX_COLUMNS" in v.error
    assert not v.profile and not v.storage_key


@pytest.mark.worker
def test_a_parquet_bomb_of_ten_million_rows_is_refused_from_its_footer(api, team, worker):
    table = pa.table({"x": pa.array(np.zeros(10_000_000, dtype=np.int8))})
    data = _parquet(table, compression="zstd")
    assert len(data) < 200_000  # a small file...
    v = _upload(api, team, "bomb", data, "bomb.parquet")
    assert v.status == "failed" and "10000000 rows" in v.error and "MAX_ROWS" in v.error


@pytest.mark.worker
def test_a_parquet_whose_strings_decode_past_the_byte_limit_is_refused_while_reading(api, team, worker, settings):
    settings.MAX_TABLE_BYTES = 20 * 1024**2
    text = "x" * 2_000
    table = pa.table({"t": pa.array([text] * 100_000)})  # 200 MB once decoded
    data = _parquet(table, use_dictionary=True, compression="zstd")
    assert len(data) < 1_000_000
    v = _upload(api, team, "strings", data, "strings.parquet")
    assert v.status == "failed" and "MAX_TABLE_BYTES" in v.error


@pytest.mark.worker
def test_row_limit_and_profile_cap_fail_their_versions(api, team, worker, settings):
    settings.MAX_ROWS = 100
    v = _upload(api, team, "long", messy_frame(300).to_csv(index=False).encode(), "long.csv")
    assert v.status == "failed" and "more than 100 rows" in v.error and "MAX_ROWS" in v.error
    settings.MAX_ROWS, settings.PROFILE_MAX_BYTES = 5_000_000, 2_000
    v = _upload(api, team, "profiled", messy_frame(50).to_csv(index=False).encode(), "small.csv")
    assert v.status == "failed" and "PROFILE_MAX_BYTES" in v.error and not v.profile


@pytest.mark.worker
def test_a_crash_nobody_expected_still_fails_the_version(team, worker):
    # The stored upload disappears before the worker reads it (storage hiccup): the handler's
    # own error handling never sees this exception; the runner's failure hook does.
    with transaction.atomic():
        v = dataset_upload(
            project=team.project, name="gone", created_by=team.editor, upload=csv_upload(messy_frame(20))
        )
        default_storage.delete(v.upload_key)
    v = wait_version(v.pk, profiled=False)
    job = Job.objects.get(target_type="datasetversion", target_id=v.pk)
    assert job.status == "failed" and v.status == "failed" and v.error == job.error


@pytest.mark.django_db  # no commit: the jobs stay queued for the test to end them
def test_a_cancelled_or_abandoned_job_fails_its_version(team):
    cancelled = dataset_upload(
        project=team.project, name="c", created_by=team.editor, upload=csv_upload(messy_frame(20))
    )
    job = Job.objects.get(target_type="datasetversion", target_id=cancelled.pk)
    job_cancel(job=job, actor=team.editor)
    cancelled.refresh_from_db()
    assert cancelled.status == "failed" and "Cancelled" in cancelled.error
    assert not default_storage.exists(cancelled.upload_key)  # the raw upload went with it
    # A job whose worker died on every attempt: the sweep gives up on it.
    dead = dataset_upload(project=team.project, name="d", created_by=team.editor, upload=csv_upload(messy_frame(20)))
    Job.objects.filter(target_type="datasetversion", target_id=dead.pk).update(
        status="running", attempts=3, max_attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert sweep_stale_jobs()["failed"] == 1
    dead.refresh_from_db()
    assert dead.status == "failed" and "stopped answering" in dead.error
    assert not DatasetVersion.objects.filter(status="processing").exists()


def _schema_writes(base: str, token_session: requests.Session) -> list[tuple[str, str]]:
    schema = token_session.get(f"{base}/api/v1/schema/?format=json", timeout=60).json()
    writes = []
    for path, methods in schema["paths"].items():
        concrete = path.replace("{id}", "1").replace("{user_id}", "1")
        concrete = concrete.replace("{pk}", "1")
        for method in methods:
            if method in ("post", "put", "patch"):
                writes.append((method, concrete))
    return writes


def test_fifty_thousand_brackets_get_400_from_every_write_endpoint(live_server, team):
    owner = Remote(live_server.url, team.owner)
    body = b"[" * 50_000 + b"]" * 50_000
    writes = _schema_writes(live_server.url, owner.session)
    assert len(writes) > 40
    wrong = []
    for method, path in writes:
        for content_type in ("application/json", "text/plain"):
            r = owner.session.request(
                method, live_server.url + path, data=body, headers={"Content-Type": content_type}, timeout=60
            )
            if r.status_code != 400 or "MAX_JSON_DEPTH" not in r.json().get("errors", {}).get("body", [""])[0]:
                wrong.append((method, path, content_type, r.status_code))
    assert wrong == []
    # The token endpoint and the pages' forms too: refused before any view (or CSRF) parses it.
    r = requests.post(
        f"{live_server.url}/api/v1/auth/token/", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert r.status_code == 400
    r = requests.post(
        f"{live_server.url}/projects/{team.project.pk}/problem/",
        data={"name": "x", "task_type": "classification", "assumptions_json": body.decode()},
        timeout=60,
    )
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.text


def test_deep_json_in_a_multipart_field_is_400(live_server, team):
    # Multipart bodies are parsed by the views (files); a serializer decoding a JSON string
    # field then recurses: the guard's backstop answers 400, never 500.
    from datasets.services import dataset_create, version_create_from_frame

    ds = dataset_create(project=team.project, name="m", created_by=team.owner)
    v = version_create_from_frame(dataset=ds, frame=messy_frame(20), created_by=team.owner, enqueue_profile=False)
    owner = Remote(live_server.url, team.owner)
    r = owner.session.post(
        f"{live_server.url}/api/v1/dataset-versions/{v.pk}/clean/",
        files={"steps": (None, "[" * 50_000 + "]" * 50_000)},
        timeout=60,
    )
    assert r.status_code == 400 and "MAX_JSON_DEPTH" in r.json()["detail"]


def test_brackets_inside_strings_are_not_nesting(api, team):
    # Text full of brackets is data, not depth: it must not be refused.
    text = "[{" * 5_000
    r = api("owner").patch(f"/api/v1/projects/{team.project.pk}/", {"objective": text}, format="json")
    assert r.status_code == 200, r.data
    assert r.data["objective"] == text
