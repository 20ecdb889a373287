"""The version page links both exports; the Parquet one downloads the visible rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets.selectors import split_assignment
from datasets.services import dataset_create, version_create_from_frame, version_split
from tests.conftest import login
from tests.datasets.helpers import messy_frame, wait_version

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def test_version_page_offers_csv_and_parquet_exports(page, team, worker):
    ds = dataset_create(project=team.project, name="customers", created_by=team.owner)
    v = wait_version(version_create_from_frame(dataset=ds, frame=messy_frame(), created_by=team.owner).pk)
    v = version_split(version=v, actor=team.owner, strategy="random", seed=2)
    visible = [int(i) for i in np.flatnonzero(split_assignment(v) != 2)]
    login(page, "victor")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/dataset-versions/{v.pk}/")
        page.wait_for_selector("#preview tbody tr")
        assert page.inner_text("#preview thead th:nth-child(2)").lower() == "row"  # split, then the row id
        shown = [int(t) for t in page.locator("#preview tbody tr td:nth-child(2)").all_inner_texts()[:5]]
        assert shown == visible[:5]  # the gaps are the locked test rows
        link = page.locator("a:text('Parquet')")
        link.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"version-exports-{width}.png"), full_page=False)
    with page.expect_download() as download:
        link.click()
    data = Path(download.value.path()).read_bytes()
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == v.split["counts"]["train"] + v.split["counts"]["validation"]
