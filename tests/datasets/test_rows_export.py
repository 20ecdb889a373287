"""Reading data back: stable row ids, the split as a filter, cursor pages, CSV and Parquet export."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from datasets.models import DatasetVersion
from datasets.selectors import split_assignment, split_frames, version_frame
from datasets.services import dataset_create, version_create_from_frame, version_split
from tests.datasets.helpers import messy_frame, wait_version

pytestmark = pytest.mark.worker


@pytest.fixture
def version(team, worker):
    ds = dataset_create(project=team.project, name="customers", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=messy_frame(), created_by=team.owner).pk)
    return version_split(version=v, actor=team.owner, strategy="stratified", column="churn", seed=3)


def walk(client, url: str, **params) -> tuple[list[int], list[list], list[str]]:
    """Follow `next` links to the end; returns row ids, rows and split parts."""
    ids, rows, parts = [], [], []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        ids += body["row_ids"]
        rows += body["rows"]
        parts += body["split"] or []
        if body["next"] is None:
            return ids, rows, parts
        response = client.get(body["next"])


def test_cursor_pages_cover_every_visible_row_once_in_order(api, version):
    viewer = api("viewer")
    url = f"/api/v1/dataset-versions/{version.pk}/rows/"
    ids, rows, parts = walk(viewer, url, page_size=37)
    assignment = split_assignment(version)
    assert ids == list(np.flatnonzero(assignment != 2))  # no test row, each visible row once, in order
    frame = version_frame(version)
    assert rows[5][0] == int(frame.iloc[ids[5]]["customer_id"])  # the row id is the row's position
    assert set(parts) == {"train", "validation"}

    train_ids, _, train_parts = walk(viewer, url, split="train", page_size=100, columns="customer_id,churn")
    assert train_ids == list(np.flatnonzero(assignment == 0)) and set(train_parts) == {"train"}
    first = viewer.get(url, {"split": "validation", "columns": "churn", "page_size": 5}).json()
    assert first["columns"] == ["churn"] and len(first["rows"]) == 5 and "cursor=" in first["next"]
    assert first["count"] == int((assignment == 1).sum())


def test_test_rows_stay_locked_and_bad_parameters_are_named(api, team, version):
    viewer = api("viewer")
    url = f"/api/v1/dataset-versions/{version.pk}/rows/"
    locked = viewer.get(url, {"split": "test"})
    assert locked.status_code == 403 and "locked" in locked.json()["errors"]["split"][0]
    assert viewer.get(f"/api/v1/dataset-versions/{version.pk}/export/", {"split": "test"}).status_code == 403
    cases = [
        ({"split": "holdout"}, "split", "train or validation"),
        ({"cursor": "not-a-cursor"}, "cursor", "next"),
        ({"cursor": "cjo1", "page": 2}, "cursor", "not both"),
        ({"page_size": 501}, "page_size", "1 to 500"),
        ({"columns": "age,ghost"}, "columns", "ghost"),
        ({"sort": "age"}, "sort", "cursor, page, page_size, split, columns"),
    ]
    for params, field, needle in cases:
        r = viewer.get(url, params)
        assert r.status_code == 400, (params, r.json())
        assert needle in r.json()["errors"][field][0], r.json()
    assert api("outsider").get(url).status_code == 404
    assert api("outsider").get(f"/api/v1/dataset-versions/{version.pk}/export/").status_code == 404
    r = viewer.get(f"/api/v1/dataset-versions/{version.pk}/export/", {"format": "xlsx"})
    assert r.status_code == 400 and r["Content-Type"] == "application/json"
    assert r.json()["errors"]["format"] == ["Unknown format 'xlsx': use csv or parquet."]
    # before a split there is nothing to filter on
    ds = dataset_create(project=team.project, name="unsplit", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=messy_frame(20), created_by=team.owner).pk)
    r = viewer.get(f"/api/v1/dataset-versions/{v.pk}/rows/", {"split": "train"})
    assert r.status_code == 400 and "split it first" in r.json()["errors"]["split"][0]
    assert viewer.get(f"/api/v1/dataset-versions/{v.pk}/rows/").json()["split"] is None


def test_row_ids_survive_an_append(api, version):
    editor, viewer = api("editor"), api("viewer")
    before = viewer.get(f"/api/v1/dataset-versions/{version.pk}/rows/", {"page_size": 500}).json()
    new_rows = [{**{c: None for c in before["columns"]}, "customer_id": 9000 + i, "churn": "no"} for i in range(3)]
    r = editor.post(f"/api/v1/datasets/{version.dataset_id}/rows/", {"rows": new_rows}, format="json")
    assert r.status_code == 202 and r["Location"].startswith("/api/v1/jobs/")
    assert viewer.get(r["Location"], {"wait": 30}).json()["status"] == "succeeded"
    appended = DatasetVersion.objects.get(pk=r.json()["id"])
    after = viewer.get(f"/api/v1/dataset-versions/{appended.pk}/rows/", {"page_size": 500}).json()
    # the appended version has no split yet: every row, ids 0..n-1, the old rows where they were
    by_id = dict(zip(after["row_ids"], after["rows"], strict=True))
    for row_id, row in zip(before["row_ids"], before["rows"], strict=True):
        assert by_id[row_id] == row
    assert [by_id[i][0] for i in range(312, 315)] == [9000, 9001, 9002] and after["count"] == 315


def test_export_train_part_as_parquet_and_csv_with_meta_columns(api, version):
    viewer = api("viewer")
    url = f"/api/v1/dataset-versions/{version.pk}/export/"
    r = viewer.get(url, {"format": "parquet", "split": "train"})
    assert r.status_code == 200 and r["Content-Type"] == "application/vnd.apache.parquet"
    assert 'filename="dataset-' in r["Content-Disposition"] and "-train.parquet" in r["Content-Disposition"]
    got = pq.read_table(io.BytesIO(b"".join(r.streaming_content))).to_pandas()
    expected = split_frames(version).train
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    r = viewer.get(url, {"meta": "1", "columns": "customer_id,churn"})
    assert r["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(b"".join(r.streaming_content).decode()))
    assert list(frame.columns) == ["_row_id", "_split", "customer_id", "churn"]
    assignment = split_assignment(version)
    assert frame["_row_id"].tolist() == list(np.flatnonzero(assignment != 2))
    assert set(frame["_split"]) == {"train", "validation"}
    # a browser asking for Parquet by its media type gets Parquet
    r = viewer.get(url, HTTP_ACCEPT="application/vnd.apache.parquet")
    assert r["Content-Type"] == "application/vnd.apache.parquet"


def test_pages_and_exports_read_across_row_groups(api, team, worker):
    n = 70_000  # more than one 64k-row group
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"i": np.arange(n), "x": rng.normal(size=n), "label": rng.choice(["a", "b"], n)})
    ds = dataset_create(project=team.project, name="big", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=frame, created_by=team.owner).pk)
    v = version_split(version=v, actor=team.owner, strategy="random", seed=1)
    from django.core.files.storage import default_storage

    with default_storage.open(v.storage_key, "rb") as fh:
        assert pq.ParquetFile(fh).metadata.num_row_groups == 2
    viewer = api("viewer")
    assignment = split_assignment(v)
    visible = np.flatnonzero(assignment == 1)
    around = int(np.searchsorted(visible, 65_530))  # a page straddling the two row groups
    body = viewer.get(f"/api/v1/dataset-versions/{v.pk}/rows/", {"split": "validation", "page_size": 50}).json()
    while body["row_ids"][-1] < visible[around]:
        body = viewer.get(body["next"]).json()
    assert [row[0] for row in body["rows"]] == body["row_ids"]  # column i holds the row id
    r = viewer.get(f"/api/v1/dataset-versions/{v.pk}/export/", {"split": "validation", "format": "parquet"})
    got = pq.read_table(io.BytesIO(b"".join(r.streaming_content))).to_pandas()
    assert got["i"].tolist() == visible.tolist()
