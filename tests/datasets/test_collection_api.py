"""Collection over the API: uploads of every format, appends, identical content stored once."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.models import Dataset, DatasetVersion
from projects.models import AuditEvent
from tests.datasets.helpers import csv_upload, messy_frame, parquet_bytes, wait_version

pytestmark = pytest.mark.worker
URL = "/api/v1/datasets/"


def upload(api, team, file, name="customers", role="editor"):
    return api(role).post(URL, {"project": team.project.pk, "name": name, "file": file}, format="multipart")


def test_upload_csv_profiles_and_finds_the_problems(api, team, worker):
    response = upload(api, team, csv_upload(messy_frame(), name="../../etc/passwd.csv", sep=";"))
    assert response.status_code == 202, response.data
    assert response.data["name"] == "customers"
    first = response.data["latest_version"]
    assert first["number"] == 1 and first["status"] == "processing"
    assert [v["id"] for v in response.data["versions"]] == [first["id"]]

    version = wait_version(first["id"])
    assert version.status == "ready", version.error
    assert version.row_count == 312 and version.column_count == 7
    assert version.storage_key.endswith(".parquet") and ".." not in version.storage_key
    assert "passwd" not in version.storage_key and "passwd" not in version.upload_key
    assert version.source_detail["delimiter"] == ";"

    detail = api("viewer").get(f"/api/v1/dataset-versions/{version.pk}/").data
    assert detail["status"] == "ready" and detail["row_count"] == 312
    columns = {c["name"]: c for c in detail["columns"]}
    assert columns["age"]["kind"] == "numeric" and columns["age"]["missing"] == 45
    assert columns["city"]["kind"] == "categorical"
    assert columns["signup"]["kind"] == "datetime"
    assert columns["customer_id"]["unique"] == 300
    kinds = {(w["kind"], w["column"]) for w in detail["warnings"]}
    assert ("duplicate_rows", "") in kinds
    assert ("missing_values", "age") in kinds
    assert ("extreme_values", "balance") in kinds  # the two typing errors, not the ordinary spread
    assert ("capped", "income") in kinds
    assert all({"kind", "column", "severity", "message", "fix", "split"} <= set(w) for w in detail["warnings"])
    severities = [w["severity"] for w in detail["warnings"]]
    order = {"high": 0, "medium": 1, "low": 2}
    assert severities == sorted(severities, key=order.get)
    assert detail["table"]["duplicate_rows"] == 12
    assert AuditEvent.objects.filter(action="dataset_version.uploaded").exists()


def test_target_choice_reports_imbalance_and_leakage(api, team, worker):
    frame = messy_frame()
    frame["churn_flag"] = (frame["churn"] == "yes").astype(int)  # the target under another name
    response = upload(api, team, csv_upload(frame))
    version = wait_version(response.data["latest_version"]["id"])
    assert version.status == "ready"
    r = api("editor").post(f"/api/v1/dataset-versions/{version.pk}/target/", {"target": "churn"}, format="json")
    assert r.status_code == 202, r.data
    # The version says it is being profiled again, with the job to wait on: not `ready` and stale.
    assert r["Location"] == f"/api/v1/jobs/{r.data['job_id']}/"
    assert r.data["recomputing"] is True and r.data["job"]["id"] == r.data["job_id"]
    assert r.data["job"]["kind"] == "dataset.profile"
    job = api("viewer").get(r["Location"], {"wait": 30}).json()
    assert job["status"] == "succeeded"
    after = api("viewer").get(f"/api/v1/dataset-versions/{version.pk}/").json()
    assert after["recomputing"] is False and after["table"] and after["target"]["column"] == "churn"
    from tests.datasets.helpers import wait_profile_change

    version = wait_profile_change(version.pk, lambda v: (v.profile.get("target") or {}).get("column") == "churn")
    kinds = {(w["kind"], w["column"]) for w in version.warnings}
    assert ("leakage_identical", "churn_flag") in kinds
    assert ("class_imbalance", "churn") in kinds
    assert ("id_like", "customer_id") in kinds
    bad = api("editor").post(f"/api/v1/dataset-versions/{version.pk}/target/", {"target": "nope"}, format="json")
    assert bad.status_code == 400 and "target" in bad.data["errors"]


def test_parquet_and_jsonl_uploads(api, team, worker):
    frame = messy_frame(60)
    r1 = upload(api, team, SimpleUploadedFile("x.parquet", parquet_bytes(frame)), name="pq")
    jsonl = frame.head(40).to_json(orient="records", lines=True).encode()
    r2 = upload(api, team, SimpleUploadedFile("x.jsonl", jsonl), name="jl")
    v1 = wait_version(r1.data["latest_version"]["id"])
    v2 = wait_version(r2.data["latest_version"]["id"])
    assert (v1.status, v1.row_count, v1.source_detail["format"]) == ("ready", 72, "parquet")
    assert (v2.status, v2.row_count, v2.source_detail["format"]) == ("ready", 40, "jsonl")


def test_latin1_tab_separated_upload(api, team, worker):
    text = "nom\tville\tâge\nRené\tSète\t31\nZoé\tNîmes\t45\nAndré\tOrléans\t52\n" * 20
    r = upload(api, team, SimpleUploadedFile("x.tsv", text.encode("latin-1")), name="latin")
    v = wait_version(r.data["latest_version"]["id"])
    assert v.status == "ready", v.error
    assert [c["name"] for c in v.schema] == ["nom", "ville", "âge"]
    assert v.source_detail["delimiter"] == "\t"


def test_identical_content_is_stored_once_and_rows_append_makes_a_version(api, team, worker):
    frame = messy_frame(50)
    a = upload(api, team, csv_upload(frame), name="a")
    b = upload(api, team, csv_upload(frame), name="b")
    va, vb = wait_version(a.data["latest_version"]["id"]), wait_version(b.data["latest_version"]["id"])
    assert va.content_hash == vb.content_hash and va.storage_key == vb.storage_key

    rows = [
        {
            "customer_id": 5000,
            "age": 33.0,
            "income": 2.5,
            "city": "Lyon",
            "signup": "2024-01-02",
            "balance": 10.0,
            "churn": "no",
        }
    ]
    r = api("editor").post(f"/api/v1/datasets/{va.dataset_id}/rows/", {"rows": rows}, format="json")
    assert r.status_code == 202, r.data
    assert r.data["number"] == 2 and r.data["row_count"] == 63
    v2 = wait_version(r.data["id"])
    assert v2.parent_id == va.pk and v2.source == "append" and v2.status == "ready"
    ds = api("viewer").get(f"/api/v1/datasets/{va.dataset_id}/").data
    assert ds["latest_version"]["number"] == 2
    assert [(v["number"], v["status"]) for v in ds["versions"]] == [(2, "ready"), (1, "ready")]


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([], "rows"),
        ("nope", "rows"),
        ([{"unknown_column": 1}], "rows"),
        ([{"age": "not a number"}], "rows"),
        ([{"age": {"nested": 1}}], "rows"),
    ],
)
def test_append_bad_rows_is_400_and_changes_nothing(api, team, worker, rows, field):
    a = upload(api, team, csv_upload(messy_frame(30)), name="base")
    va = wait_version(a.data["latest_version"]["id"])
    r = api("editor").post(f"/api/v1/datasets/{va.dataset_id}/rows/", {"rows": rows}, format="json")
    assert r.status_code == 400, r.data
    assert field in r.data["errors"]
    assert DatasetVersion.objects.filter(dataset_id=va.dataset_id).count() == 1


def test_new_version_of_existing_dataset_by_upload(api, team, worker):
    a = upload(api, team, csv_upload(messy_frame(30)), name="grow")
    wait_version(a.data["latest_version"]["id"])
    r = api("editor").post(
        f"/api/v1/datasets/{a.data['id']}/versions/", {"file": csv_upload(messy_frame(40, seed=2))}, format="multipart"
    )
    assert r.status_code == 202, r.data
    v = wait_version(r.data["id"])
    assert v.number == 2 and v.parent.number == 1 and v.row_count == 52


def test_duplicate_dataset_name_is_409(api, team, worker):
    upload(api, team, csv_upload(messy_frame(20)), name="dup")
    r = upload(api, team, csv_upload(messy_frame(20)), name="dup")
    assert r.status_code == 409
    assert Dataset.objects.filter(name="dup").count() == 1
