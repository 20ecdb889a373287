"""Time series on the monitoring page and API (issue 15, item 9): the range selector (24h to 90d,
validated), a day of hourly snapshots drawn as time charts with the test band, and the page a
owner sees at 1,280 and 390 px."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import F
from django.utils import timezone

from deployments.management.commands.simulate_traffic import simulate
from deployments.models import Deployment, MonitoringSnapshot, Prediction
from deployments.monitoring.services import snapshots
from tests.conftest import login
from tests.factories import PASSWORD
from tests.monitoring.helpers import log_predictions, make_deployment

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def page_url(d: Deployment, query: str = "") -> str:
    return f"/projects/{d.project_id}/deployments/{d.pk}/monitoring/{query}"


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


def _snapshots_at(deployment, ages: list[timedelta]) -> None:
    now = timezone.now()
    for age in ages:
        snapshots.snapshot_compute(deployment=deployment, window_end=now - age, window_minutes=60)


AGES = [timedelta(hours=1), timedelta(days=3), timedelta(days=20), timedelta(days=60), timedelta(days=100)]


@pytest.mark.django_db
def test_the_range_selects_the_snapshots_drawn(client, team, deployment):
    _snapshots_at(deployment, AGES)
    client.login(username=team.viewer.username, password=PASSWORD)
    counts = {}
    for key in ("24h", "7d", "30d", "90d"):
        res = client.get(page_url(deployment, f"?range={key}"))
        assert res.status_code == 200
        counts[key] = len(res.context["chart_data"]["series"])
        assert res.context["chart_data"]["range"]["key"] == key
        assert f'data-range="{key}" aria-current="true"' in res.content.decode()
    assert counts == {"24h": 1, "7d": 2, "30d": 3, "90d": 4}
    assert client.get(page_url(deployment)).context["chart_data"]["range"]["key"] == "7d"  # the default


@pytest.mark.django_db
def test_a_bad_range_is_a_400_with_the_error_at_the_selector(client, team, deployment):
    _snapshots_at(deployment, AGES[:1])
    before = MonitoringSnapshot.objects.count()
    client.login(username=team.viewer.username, password=PASSWORD)
    res = client.get(page_url(deployment, "?range=1y"))
    assert res.status_code == 400
    html = res.content.decode()
    assert 'id="range-error"' in html and "Choose one of 24h, 7d, 30d, 90d." in html
    assert res.context["chart_data"]["range"]["key"] == "7d"  # the page still shows the default range
    assert MonitoringSnapshot.objects.count() == before


@pytest.mark.django_db
def test_the_api_takes_the_same_range(team, deployment, api):
    _snapshots_at(deployment, AGES)
    viewer = api("viewer")
    body = viewer.get(f"/api/v1/deployments/{deployment.pk}/monitoring/?range=30d").json()
    assert body["range"] == "30d" and len(body["series"]) == 3
    res = viewer.get(f"/api/v1/deployments/{deployment.pk}/monitoring/?range=week")
    assert res.status_code == 400 and "range" in res.json()["errors"]
    outsider = api("outsider").get(f"/api/v1/deployments/{deployment.pk}/monitoring/?range=30d")
    assert outsider.status_code == 404


@pytest.mark.django_db
def test_series_points_carry_the_live_interval_and_rows_per_request(deployment):
    log_predictions(deployment, n=200, seed=31, label=True, minutes_ago=30)
    snapshots.snapshot_compute(deployment=deployment)
    from deployments.monitoring.selectors import series

    (point,) = series(deployment)
    acc = point["performance"]["accuracy"]
    assert acc["low"] < acc["value"] < acc["high"]
    assert point["requests"] == 200 and point["rows_per_request"]["max"] == 1
    assert point["drift_enough"] is True


@pytest.mark.django_db
def test_the_simulator_backfills_a_day_of_hourly_snapshots(deployment):
    """What the demo does (`demo.loop.run_loop`): a day of traffic, one snapshot per hour."""
    result = simulate(
        deployment=deployment, n=240, drift=0.0, hours=24, feedback_delay_minutes=60, seed=4, snapshots=True
    )
    assert result.snapshots == 24
    ends = list(MonitoringSnapshot.objects.filter(deployment=deployment).order_by("window_end"))
    assert len(ends) == 24
    assert all(b.window_end - a.window_end == timedelta(hours=1) for a, b in itertools.pairwise(ends))
    # Every window has its performance estimated from the probabilities (the simulator's requests
    # of 50 rows each land in one window), and the realized value beside it from the labels.
    estimates = [s.data["estimation"] for s in ends]
    assert all(e["metric"] for e in estimates) and sum(e["n_rows"] for e in estimates) == 240
    assert all(0 < e["realized"]["n_labels"] <= e["n_rows"] for e in estimates[:-2] if e["n_rows"])


def _day_of_hourly_snapshots(deployment) -> None:
    for hour in range(24):
        log_predictions(deployment, n=120, seed=100 + hour, label=True, minutes_ago=60 * hour + 30)
    # ground truth arrives ten minutes after each prediction
    Prediction.objects.filter(deployment=deployment).update(actual_at=F("created_at") + timedelta(minutes=10))
    now = timezone.now()
    for hour in range(24):
        snapshots.snapshot_compute(deployment=deployment, window_end=now - timedelta(hours=hour), window_minutes=60)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_monitoring_page_over_a_day_wide_and_phone(page, team):
    deployment = make_deployment(team.project, team.owner)
    _day_of_hourly_snapshots(deployment)
    login(page, team.owner.username)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
        page.goto(page_url(deployment, "?range=24h"))
        for chart in ("traffic", "latency", "rows", "drift-series", "performance"):
            page.wait_for_selector(f"#chart-{chart} .main-svg")
        # the test-interval band and the live points with their own intervals
        assert page.locator("#chart-performance .legendtext:text-is('test 95% interval')").count() == 1
        assert page.locator("#chart-performance .errorbar").count() >= 1
        assert page.locator("#range a[aria-current=true]").text_content() == "24h"
        assert page.get_attribute("#health", "data-state") == "ok"  # normal traffic: a calm page
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 2, f"{overflow}px wider than a {width}px window"
        page.screenshot(path=str(SCREENSHOTS / f"monitoring-day-{width}.png"), full_page=True)
        page.locator("#chart-performance").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"monitoring-day-{width}-performance.png"))
    page.click("#range a[data-range='90d']")
    page.wait_for_selector("#range a[data-range='90d'][aria-current=true]")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_a_few_dozen_predictions_say_not_enough_data_yet(page, team):
    deployment = make_deployment(team.project, team.owner)
    log_predictions(deployment, n=46, seed=41)
    snapshots.snapshot_compute(deployment=deployment)
    login(page, team.owner.username)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(page_url(deployment))
    assert "Not enough data yet (46 of 100 predictions" in page.locator("#not-enough").text_content()
    assert page.get_attribute("#health", "data-state") == "ok"
    assert page.locator("#alerts tbody tr").first.text_content().strip() == "No alerts."
    badges = page.locator("#drift .badge").all_text_contents()
    assert badges and set(badges) == {"not enough data"}
    page.screenshot(path=str(SCREENSHOTS / "monitoring-few-1280.png"), full_page=True)
