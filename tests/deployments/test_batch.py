from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from deployments.ml import columnar
from deployments.models import Prediction, PredictionSegment
from deployments.prediction_store import prediction_inputs
from tests.conftest import wait_for_job
from tests.deployments.conftest import FEATURES, loan_frame


def batch_logged(deployment, job_id=None) -> list[dict]:
    """A deployment's batch predictions in the monitoring store (segment-only rows) as records."""
    from django.core.files.storage import default_storage

    segments = PredictionSegment.objects.filter(deployment=deployment, segment_only_rows__gt=0)
    if job_id is not None:
        segments = segments.filter(caller=f"job:{job_id}")
    assert all(s.segment_only_rows == s.rows for s in segments)
    return columnar.read_tables(default_storage, list(segments.values_list("path", flat=True)), None).to_pylist()


def _logging_done(job) -> None:
    """The batch job queues a child job that writes its predictions to the monitoring log."""
    log = wait_for_job(job.result["logging_job_id"])
    assert log.status == "succeeded", log.error
    assert log.parent_id == job.pk and log.kind == "deployment.batch_log" and log.progress == 100


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
    monkeypatch.setattr("deployments.batch.services.CHUNK_ROWS", 70)  # several chunks in a small file
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
    _logging_done(job)
    assert listed[0]["logging"]["job"] == job.result["logging_job_id"]
    logged = batch_logged(deployment, job.pk)
    assert len(logged) == 248  # in the columnar store, one segment per chunk
    assert not Prediction.objects.filter(deployment=deployment, source="batch").exists()  # no row per prediction
    rec = logged[0]
    assert (
        set(FEATURES) <= set(rec) and rec[columnar.PREDICTION] in ("yes", "no") and 0.5 <= rec[columnar.CONFIDENCE] <= 1
    )
    assert rec[columnar.SOURCE] == "batch" and rec[columnar.VERSION] == deployment.model_version_id
    assert max(rec[columnar.PROBABILITIES]) == pytest.approx(rec[columnar.CONFIDENCE])
    # Monitoring counts them: the window's traffic adds the segments' rows to the Prediction rows'.
    from deployments.monitoring.window import traffic_compute

    traffic = traffic_compute(deployment, timezone.now() - timedelta(hours=1), timezone.now())
    assert traffic["predictions"] == 248 and traffic["by_source"] == {"batch": 248}
    assert traffic["requests"] == 0  # a batch chunk is not a predict request


def test_batch_over_a_dataset_version(team, api, deployment, worker):
    dv = deployment.model_version.dataset_version
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/batch/", {"dataset_version": dv.pk}, format="json")
    assert r.status_code == 202, r.content
    assert r["Location"] == f"/api/v1/jobs/{r.json()['job_id']}/" and r.json()["job_id"] == r.json()["id"]
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    assert job.result["rows"] == 300 and job.result["errors"] == 0
    _logging_done(job)
    assert len(batch_logged(deployment, job.pk)) == 300


def test_batch_permissions_and_bad_input(team, api, deployment, registered, settings):
    url = f"/api/v1/deployments/{deployment.pk}/batch/"
    frame = loan_frame(10)[FEATURES]
    assert api("outsider").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 404
    assert api("viewer").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 403
    assert api("editor").post(url, {}, format="multipart").status_code == 400
    r = api("editor").post(url, {"file": _upload(frame, "csv"), "output_format": "xlsx"}, format="multipart")
    assert r.status_code == 400 and r.json()["errors"]["output_format"] == ["'xlsx' is not valid: use csv or parquet."]
    bad = SimpleUploadedFile("rows.parquet", b"definitely not parquet")
    assert api("editor").post(url, {"file": bad}, format="multipart").status_code == 400
    settings.MAX_UPLOAD_BYTES = 100
    assert api("editor").post(url, {"file": _upload(frame, "csv")}, format="multipart").status_code == 413
    # a dataset version of another project
    r = api("editor").post(url, {"dataset_version": 999999}, format="json")
    assert r.status_code == 400 and "dataset_version" in r.json()["errors"]
    from jobs.models import Job

    assert not Job.objects.filter(kind="deployment.batch").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_file_without_the_model_columns_is_refused_before_any_job(team, api, deployment, fmt):
    """Only the header (CSV) or the footer (Parquet) is read: the answer names the missing columns
    and the ones the model does not use, under the file control; no job, no stored file."""
    from jobs.models import Job

    frame = loan_frame(20)[["age", "income"]].assign(colour="red", Score=0.5)
    r = api("editor").post(
        f"/api/v1/deployments/{deployment.pk}/batch/", {"file": _upload(frame, fmt)}, format="multipart"
    )
    assert r.status_code == 400, r.content
    message = r.json()["errors"]["file"][0]
    assert "Missing columns the model needs: score, color, member." in message
    assert "does not use (check their names): colour, Score." in message
    # the page's batch form: the same answer, next to the form that sent it
    from tests.deployments.test_views import client_for

    page = client_for(team.editor).post(
        f"/deployments/{deployment.pk}/batch/", {"file": _upload(frame, fmt)}, follow=True
    )
    assert "Missing columns the model needs: score, color, member." in page.content.decode()
    assert not Job.objects.filter(kind="deployment.batch").exists()


def test_a_file_whose_header_cannot_be_read_is_refused(team, api, deployment):
    bad = SimpleUploadedFile("rows.csv", b"")
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/batch/", {"file": bad}, format="multipart")
    assert r.status_code == 400
    bad = SimpleUploadedFile("rows.csv", b"\xff\xfe\x00garbage\n\x00\x01")
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/batch/", {"file": bad}, format="multipart")
    assert r.status_code == 400 and "file" in r.json()["errors"]


# --- the pyarrow writer and the COPY payload ------------------------------------------------------

TRICKY = [
    "=SUM(A1)",
    "+1",
    "-2",
    "@cmd",
    "\tx",
    "\rx",
    "plain",
    'qu"ote, comma',
    "back\\slash",
    "new\nline",
    "é 漢",
    "",
]


def test_csv_writer_is_formula_safe_in_every_string_column(tmp_path):
    import csv

    import pyarrow as pa

    from deployments.batch.output import OutputWriter

    n = len(TRICKY)
    table = pa.table(
        {
            "text": pa.array(TRICKY, type=pa.large_string()),  # what pandas hands over
            "cat": pa.array(TRICKY, type=pa.string()).dictionary_encode(),  # a Parquet categorical
            "number": [-1.5] * n,  # numbers are not text: left alone
            "prediction": ["-yes"] + ["no"] * (n - 1),
            "error": ["=bad"] + [""] * (n - 1),
        }
    )
    path = tmp_path / "out.csv"
    out = OutputWriter(str(path), "csv")
    out.write(table)
    out.write(table)  # a second chunk: no second header
    out.close()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * n
    for row, raw in zip(rows[:n], TRICKY, strict=True):
        expected = "'" + raw if raw[:1] in ("=", "+", "-", "@", "\t", "\r") else raw
        assert row["text"] == expected and row["cat"] == expected
        assert row["number"] == "-1.5"
    assert rows[0]["prediction"] == "'-yes" and rows[0]["error"] == "'=bad"
    assert rows[1]["prediction"] == "no"


def test_json_text_matches_json_dumps_of_each_value():
    import datetime
    import json
    import math

    import numpy as np
    import pyarrow as pa

    from deployments.batch.arrow_json import json_labels, json_objects, json_probabilities

    table = pa.table(
        {
            "f": [1.0, 0.1, 1e-7, 1e20, float("nan"), -0.5, 2.0, float("inf"), None, 3.25, 0.0, -7.0],
            "i": list(range(-6, 6)),
            "b": [True, False, None] * 4,
            "s": [*TRICKY[:-1], None],
            "when": pa.array([datetime.datetime(2024, 5, 1, 12, 30)] * 12, type=pa.timestamp("ms")),
        }
    )
    rows = [json.loads(text) for text in json_objects(table).to_pylist()]
    for row, f, i, b, s in zip(rows, *(table.column(c).to_pylist() for c in ("f", "i", "b", "s")), strict=True):
        assert list(row) == ["f", "i", "b", "s", "when"]
        if f is None or not math.isfinite(f):
            assert row["f"] is None
        else:
            assert row["f"] == f and isinstance(row["f"], float)  # 2.0 stays a float
        assert row["i"] == i and isinstance(row["i"], int)
        assert row["b"] is b and row["s"] == s
        assert row["when"].startswith("2024-05-01T12:30:00")
    proba = np.array([[0.1234567, 0.8765433], [1.0, 0.0]])
    assert [json.loads(t) for t in json_probabilities(proba, ["no", "yes"]).to_pylist()] == [
        {"no": 0.123457, "yes": 0.876543},
        {"no": 1.0, "yes": 0.0},
    ]
    assert json_labels(np.array(["no", 'y"es'], dtype=object)).to_pylist() == ['"no"', '"y\\"es"']
    assert json_labels(np.array([1.5, np.nan])).to_pylist() == ["1.5", "null"]


def _logged_rows(deployment, job_id):
    return {tuple(sorted((f, rec[f]) for f in FEATURES)): rec for rec in batch_logged(deployment, job_id)}


def test_logged_rows_hold_each_scored_row_and_match_the_output_file(team, api, deployment, worker, monkeypatch):
    monkeypatch.setattr("deployments.batch.services.CHUNK_ROWS", 40)
    deployment.unknown_category_policy = "allow"  # odd strings reach the model and the log
    deployment.allow_missing = False
    deployment.save()
    frame = loan_frame(120, seed=9)[FEATURES]
    # (pandas' to_csv leaves a lone CR unquoted: the "\rx" case is the writer test's)
    for i, raw in enumerate(t for t in TRICKY[:-1] if t != "\rx"):
        frame.loc[i, "color"] = raw
    frame.loc[20, "income"] = None  # refused: missing
    frame["comment"] = "=not a feature"  # extra columns go to the output, not to the log
    url = f"/api/v1/deployments/{deployment.pk}/batch/"
    r = api("editor").post(url, {"file": _upload(frame, "csv"), "output_format": "csv"}, format="multipart")
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    assert job.result["rows"] == 120 and job.result["errors"] == 1
    d = api("viewer").get(api("viewer").get(url).json()[0]["download_url"])
    out = pd.read_csv(io.BytesIO(b"".join(d.streaming_content)), keep_default_na=False)
    assert list(out.columns) == [*FEATURES, "comment", "prediction", "confidence", "proba_no", "proba_yes", "error"]
    assert (out["comment"] == "'=not a feature").all()
    _logging_done(job)
    logged = _logged_rows(deployment, job.pk)
    assert len(logged) == 119
    matched = 0
    for i, row in frame.iterrows():
        if i == 20:
            assert "income is missing" in out.loc[i, "error"] and out.loc[i, "prediction"] == ""
            continue
        inputs = {
            "age": int(row["age"]),
            "income": float(row["income"]),
            "score": float(row["score"]),
            "color": row["color"],
            "member": bool(row["member"]),
        }
        p = logged[tuple(sorted(inputs.items()))]
        assert p[columnar.PREDICTION] == out.loc[i, "prediction"] and p[columnar.PREDICTION] in ("no", "yes")
        assert p[columnar.CONFIDENCE] == pytest.approx(float(out.loc[i, "confidence"]))
        assert p[columnar.PROBABILITIES] == pytest.approx(
            [float(out.loc[i, "proba_no"]), float(out.loc[i, "proba_yes"])]
        )
        assert p[columnar.CONFIDENCE] == pytest.approx(max(p[columnar.PROBABILITIES]))
        assert p[columnar.VERSION] == deployment.model_version_id and p[columnar.SOURCE] == "batch"
        matched += 1
    assert matched == 119


def test_a_redelivered_job_replaces_what_the_first_delivery_logged(team, api, deployment, worker):
    from jobs.models import Job
    from jobs.runner import execute

    other = Prediction.objects.create(
        project=team.project,
        deployment=deployment,
        model_version=deployment.model_version,
        source="api",
        inputs={"age": 1},
        prediction="no",
        created_at=timezone.now(),
    )
    frame = loan_frame(90, seed=3)[FEATURES]
    r = api("editor").post(
        f"/api/v1/deployments/{deployment.pk}/batch/", {"file": _upload(frame, "parquet")}, format="multipart"
    )
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    _logging_done(job)
    first = {rec[columnar.ID] for rec in batch_logged(deployment, job.pk)}
    assert len(first) == 90
    # The broker delivers it again (a late ack after the worker died mid-way).
    Job.objects.filter(pk=job.pk).update(status="queued", claim_token=None, finished_at=None)
    assert execute(job.pk) == "ran"
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2
    _logging_done(job)
    second = {rec[columnar.ID] for rec in batch_logged(deployment, job.pk)}
    assert len(second) == 90 and not first & second
    assert Prediction.objects.filter(pk=other.pk).exists()


def test_a_redelivered_logging_job_logs_each_prediction_once(team, api, deployment, worker):
    from jobs.models import Job
    from jobs.runner import execute

    r = api("editor").post(
        f"/api/v1/deployments/{deployment.pk}/batch/",
        {"file": _upload(loan_frame(60, seed=2)[FEATURES], "parquet")},
        format="multipart",
    )
    job = wait_for_job(r.json()["id"])
    log_id = job.result["logging_job_id"]
    keys = Job.objects.get(pk=log_id).params["keys"]
    # Delivered again before it could start: it does the whole work, once.
    log = wait_for_job(log_id)
    assert log.status == "succeeded" and len(batch_logged(deployment, job.pk)) == 60
    from django.core.files.storage import default_storage

    assert not any(default_storage.exists(k) for k in keys)  # the chunk files go once all is committed
    # A late duplicate delivery of the finished logging job (its files gone): nothing changes.
    Job.objects.filter(pk=log_id).update(status="queued", claim_token=None, finished_at=None)
    assert execute(log_id) == "ran"
    assert Job.objects.get(pk=log_id).status == "succeeded"
    assert len(batch_logged(deployment, job.pk)) == 60


def test_a_chunk_whose_rows_are_all_refused_keeps_the_columns(team, api, deployment, worker, monkeypatch):
    monkeypatch.setattr("deployments.batch.services.CHUNK_ROWS", 30)
    frame = loan_frame(90, seed=4)[FEATURES]
    frame.loc[30:59, "color"] = "purple"  # the whole second chunk
    for fmt in ("csv", "parquet"):
        r = api("editor").post(
            f"/api/v1/deployments/{deployment.pk}/batch/",
            {"file": _upload(frame, "csv"), "output_format": fmt},
            format="multipart",
        )
        job = wait_for_job(r.json()["id"])
        assert job.status == "succeeded", job.error
        assert job.result["errors"] == 30
        listed = api("viewer").get(f"/api/v1/deployments/{deployment.pk}/batch/").json()
        d = api("viewer").get(next(x for x in listed if x["id"] == job.pk)["download_url"])
        content = io.BytesIO(b"".join(d.streaming_content))
        out = pd.read_csv(content) if fmt == "csv" else pd.read_parquet(content)
        assert len(out) == 90 and out["proba_yes"].notna().sum() == 60
        assert out.loc[30:59, "prediction"].isna().all() and out.loc[30:59, "error"].str.contains("unknown").all()


def test_the_embedded_mode_logs_the_same_rows_as_copy(team, deployment, transactional_db):
    """The SQLite path (bulk_create), the PostgreSQL path without the columnar store (COPY) and the
    columnar store's segment write the same content."""
    import json

    import numpy as np
    import pyarrow as pa

    from deployments.batch.log_source import LogChunk, LogTarget, _bulk_create_chunk, _copy_chunk
    from jobs.models import Job

    frame = loan_frame(50, seed=6)[FEATURES]
    frame.loc[0, "color"] = 'sq"uote\\'
    frame.loc[1, "income"] = np.nan
    proba = np.random.default_rng(0).dirichlet([1, 1], 50)
    labels = np.array(["no", "yes"], dtype=object)[proba.argmax(1)]
    chunk = LogChunk(pa.Table.from_pandas(frame, preserve_index=False), labels, proba.max(1), proba, 0.5)
    rows = {}
    for pk, log in ((900001, _copy_chunk), (900002, _bulk_create_chunk)):
        log(LogTarget(deployment, deployment.model_version, Job(pk=pk), ["no", "yes"]), chunk)
        logged = Prediction.objects.filter(caller=f"job:{pk}")
        rows[pk] = sorted(
            [
                (prediction_inputs(p), p.prediction, p.confidence, p.probabilities, p.latency_ms, p.source, p.status)
                for p in logged
            ],
            key=lambda row: (row[2], json.dumps(row[3], sort_keys=True)),  # (the copy's ages are floats)
        )
    assert len(rows[900001]) == 50 and rows[900001] == rows[900002]
    assert any(r[0]["color"] == 'sq"uote\\' for r in rows[900001])
    assert any(r[0]["income"] is None for r in rows[900001])
    # The columnar store's segment (PostgreSQL's default) holds the same content, probabilities unrounded.
    from deployments.batch.log_source import _segment_chunk

    _segment_chunk(LogTarget(deployment, deployment.model_version, Job(pk=900003), ["no", "yes"]), chunk)
    segment = sorted(
        [
            (
                {f: rec[f] for f in FEATURES},
                rec[columnar.PREDICTION],
                rec[columnar.CONFIDENCE],
                {"no": round(rec[columnar.PROBABILITIES][0], 6), "yes": round(rec[columnar.PROBABILITIES][1], 6)},
                rec[columnar.SOURCE],
            )
            for rec in batch_logged(deployment, 900003)
        ],
        key=lambda row: (row[2], json.dumps(row[3], sort_keys=True)),
    )
    assert segment == [(r[0], r[1], r[2], r[3], r[5]) for r in rows[900002]]
