"""The main flow in a real browser: upload messy data, see its problems, fix them with a recipe, split."""

from __future__ import annotations

import re

import pytest

from datasets.models import DatasetVersion, Recipe
from tests.conftest import login
from tests.datasets.helpers import messy_frame

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_upload_explore_recipe_split(page, team, worker, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(messy_frame().to_csv(index=False, sep=";").encode("cp1252"))
    login(page, "eddie")
    page.goto(f"/projects/{team.project.pk}/datasets/")
    page.set_input_files("#upload-file", str(path))
    assert page.input_value("#upload-name") == "customers"
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/dataset-versions/\d+/$"))
    version_id = int(page.url.rstrip("/").split("/")[-1])

    # The page follows the ingest and profile jobs and reloads when they finish.
    page.wait_for_selector("#warnings", timeout=60000)
    page.wait_for_selector("#version-status:text('ready')")
    warnings = page.inner_text("#warnings")
    assert "duplicate_rows" in warnings and "missing_values" in warnings and "capped" in warnings
    page.wait_for_selector("#chart-hist .main-svg")
    page.wait_for_selector("#chart-corr .main-svg")
    page.wait_for_selector("#chart-scatter .main-svg")
    page.wait_for_selector("#preview tbody tr")
    assert "Page 1 of" in page.inner_text("#page-label")

    # Choose the target: the profile is computed again with imbalance and leakage checks.
    page.select_option("#target", "churn")
    page.click("#target-form button[type=submit]")
    page.wait_for_selector("#warnings tr[data-kind='class_imbalance']", timeout=60000)
    page.wait_for_selector("#chart-target .main-svg")

    # The automatic recipe is there, each step with its reason; start from no steps instead and
    # build one with the structured editor, preview it, save it.
    editor = "#version-recipe"
    page.wait_for_selector(f"{editor} .steps > li[data-op=drop_columns] .step-why")
    assert "identifier" in page.inner_text(f"{editor} .steps > li[data-op=drop_columns]")
    page.select_option(f"{editor}-start", "none")
    page.click(f"{editor} [data-role=add-box] summary")
    page.select_option(f"{editor}-op", "drop_columns")
    page.select_option(f"{editor}-add-columns", ["customer_id"])
    page.click(f"{editor} [data-role=add-step]")
    page.select_option(f"{editor}-op", "impute")
    page.select_option(f"{editor}-add-columns", ["age"])
    page.select_option(f"{editor}-add-strategy", "median")
    page.click(f"{editor} [data-role=add-step]")
    page.select_option(f"{editor}-op", "drop_duplicates")
    page.click(f"{editor} [data-role=add-step]")
    assert page.locator(f"{editor} .steps > li").count() == 3
    page.click(f"{editor} [data-role=preview]")
    page.wait_for_selector(f"{editor} [data-role=after] tbody tr")
    assert "customer_id" not in page.inner_text(f"{editor} [data-role=after] thead")
    page.fill("#recipe-name", "clean customers")
    page.click("#recipe-save button[type=submit]")
    page.wait_for_selector(".messages li.success")
    recipe = Recipe.objects.get(name="clean customers")
    assert [s["op"] for s in recipe.steps] == ["drop_columns", "impute", "drop_duplicates"]

    # A recipe naming a column that does not exist is refused at that step, the column named.
    page.click(f"{editor} [data-role=json-box] summary")
    page.fill(f"{editor}-json", '[{"op": "drop_columns", "columns": ["ghost"]}]')
    page.click(f"{editor} [data-role=apply-json]")
    page.click(f"{editor} [data-role=preview]")
    page.wait_for_selector(f"{editor} .steps > li.invalid .errorlist:has-text('ghost')")

    # Split: stratified on the target; the test set shows as locked.
    page.select_option("#id_strategy", "stratified")
    page.select_option("#id_column", "churn")
    page.click("#split-form button[type=submit]")
    page.wait_for_selector("#test-locked", timeout=60000)  # a job: the page reloads when it ends
    assert "locked" in page.inner_text("#split-summary")
    version = DatasetVersion.objects.get(pk=version_id)
    assert version.test_locked and version.split["strategy"] == "stratified"

    # The overview's workflow shows the data stage done.
    page.goto(f"/projects/{team.project.pk}/")
    assert page.get_attribute("[data-stage='data']", "data-state") == "done"
