"""Alerts that respect sample size: drift verdicts (significance after Holm AND a volume-aware
PSI), "not enough data yet" below the minimum volume, live metrics with their own interval, and
latency counted per request (issue 15, items 6-8)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from deployments.ml import drift
from deployments.models import Alert, Prediction
from deployments.monitoring.services import snapshots
from deployments.monitoring.services.snapshots import live_status
from tests.monitoring.helpers import log_predictions, make_deployment

# ------------------------------------------------------------------ the rules, no database


def _reference(rng: np.random.Generator) -> tuple[dict, dict, dict]:
    features = {f"x{i}": rng.normal(size=20_000) for i in range(4)}
    colors = rng.choice(["red", "green", "blue"], size=20_000, p=[0.5, 0.3, 0.2])
    refs, arrays = {}, {}
    for name, values in features.items():
        built = drift.numeric_reference(values)
        refs[name] = built["json"] | {"array": name}
        arrays[name] = built["sorted"]
    refs["color"] = drift.categorical_reference(colors.astype(object))
    return refs, arrays, features


def _window(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, list]:
    cols = {f"x{i}": (rng.normal(size=n) + (shift if i == 0 else 0.0)).tolist() for i in range(4)}
    cols["color"] = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2]).tolist()
    return cols


def test_thirty_in_distribution_rows_raise_no_alert_even_when_the_minimum_allows_them():
    rng = np.random.default_rng(0)
    refs, arrays, _ = _reference(rng)
    alerts = psi_only = 0
    for _ in range(200):
        results, _ = drift.window_drift(
            refs, arrays, _window(rng, 30), 30, psi_warn=0.1, psi_alert=0.2, min_samples=30, alpha=0.01
        )
        alerts += sum(r.status == "alert" for r in results)
        psi_only += sum(r.psi > 0.2 for r in results)  # the old rule: PSI alone
    assert alerts <= 2  # <= 0.2% of 1,000 feature-windows (Holm at 0.01 per window)
    assert psi_only > 300  # PSI on 30 rows is mostly noise: the old rule alerted on a third of them


def test_below_the_minimum_volume_the_verdict_is_not_enough_data():
    rng = np.random.default_rng(1)
    refs, arrays, _ = _reference(rng)
    results, _ = drift.window_drift(
        refs, arrays, _window(rng, 46, shift=3.0), 46, psi_warn=0.1, psi_alert=0.2, min_samples=100, alpha=0.01
    )
    assert {r.status for r in results} == {"insufficient"}
    assert all(r.psi is None for r in results)


def test_a_real_shift_at_1000_rows_alerts_on_that_feature_only():
    rng = np.random.default_rng(2)
    refs, arrays, _ = _reference(rng)
    results, _ = drift.window_drift(
        refs, arrays, _window(rng, 1000, shift=0.6), 1000, psi_warn=0.1, psi_alert=0.2, min_samples=100, alpha=0.01
    )
    status = {r.feature: r.status for r in results}
    assert status["x0"] == "alert"
    assert all(s == "ok" for f, s in status.items() if f != "x0"), status
    x0 = next(r for r in results if r.feature == "x0")
    assert x0.p_adjusted is not None and x0.p_adjusted < 1e-6


def test_a_large_psi_with_an_insignificant_test_is_not_an_alert():
    # The example: PSI 1.10 with KS p = 0.80 (30 rows, an empty bin) was a critical alert.
    assert drift.status_for(1.10, psi_warn=0.1, psi_alert=0.2, p_value=0.80, alpha=0.01, n=30, bins=10) == "ok"
    assert drift.status_for(1.10, psi_warn=0.1, psi_alert=0.2, p_value=1e-5, alpha=0.01, n=300, bins=10) == "alert"
    assert drift.status_for(0.12, psi_warn=0.1, psi_alert=0.2, p_value=1e-5, alpha=0.01, n=50_000, bins=10) == "warn"
    assert drift.status_for(None, psi_warn=0.1, psi_alert=0.2) == "insufficient"


def test_holm_adjusts_like_the_textbook():
    assert drift.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert drift.holm([0.5, None, 0.001]) == [pytest.approx(0.5), None, pytest.approx(0.002)]


def test_the_alert_threshold_depends_on_the_volume():
    t = {n: drift.alert_threshold(n, 10, psi_warn=0.1, psi_alert=0.2) for n in (50, 100, 300, 1000, 10_000)}
    assert t[50] == pytest.approx(0.1)  # never below psi_warn
    assert 0.13 < t[300] < 0.16 and 0.16 < t[1000] < 0.18 and 0.185 < t[10_000] < 0.2
    assert t[50] <= t[100] < t[300] < t[1000] < t[10_000]


def test_a_live_interval_must_clear_the_test_interval_to_alert():
    test = {"ci_low": 0.80, "ci_high": 0.90}
    overlapping = {"value": 0.72, "ci_low": 0.58, "ci_high": 0.86}
    below = {"value": 0.72, "ci_low": 0.68, "ci_high": 0.77}
    assert live_status(overlapping, test, lower_is_better=False, enough=True) == "ok"
    assert live_status(below, test, lower_is_better=False, enough=True) == "alert"
    assert live_status(below, test, lower_is_better=False, enough=False) == "insufficient"
    # lower is better (an error): alert only when the live interval is wholly above the test one
    err_test = {"ci_low": 1.0, "ci_high": 1.4}
    assert live_status({"ci_low": 1.3, "ci_high": 1.9}, err_test, lower_is_better=True, enough=True) == "ok"
    assert live_status({"ci_low": 1.5, "ci_high": 1.9}, err_test, lower_is_better=True, enough=True) == "alert"
    assert live_status({"ci_low": None, "ci_high": None}, err_test, lower_is_better=True, enough=True) == "insufficient"


# ------------------------------------------------------------------ snapshots, real PostgreSQL


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


def _label(deployment, n_right: int, n_wrong: int) -> None:
    rows = list(Prediction.objects.filter(deployment=deployment).order_by("created_at")[: n_right + n_wrong])
    for i, p in enumerate(rows):
        p.actual = p.prediction if i < n_right else 1 - int(p.prediction)
        p.actual_source, p.actual_at = "feedback", timezone.now()
    Prediction.objects.bulk_update(rows, ["actual", "actual_source", "actual_at"])


@pytest.mark.django_db
def test_a_few_dozen_normal_predictions_give_a_calm_snapshot(deployment):
    log_predictions(deployment, n=46, seed=21)
    _label(deployment, 12, 0)
    data = snapshots.snapshot_compute(deployment=deployment).data
    assert data["drift"]["sample_size"] == 46 and data["drift"]["min_samples"] == 100
    assert data["drift"]["enough"] is False
    assert {f["status"] for f in data["drift"]["features"]} == {"insufficient"}
    assert data["performance"]["status"] == "insufficient" and data["performance"]["min_labels"] == 30
    assert not Alert.objects.filter(deployment=deployment).exists()


@pytest.mark.django_db
def test_forty_labels_a_little_below_the_test_interval_do_not_alert(deployment):
    # Test accuracy 0.85 (0.80 to 0.90); live 29 / 40 = 0.725: below 0.80, but within the
    # sampling error of 40 labels. The old rule (point estimate vs the test bound) alerted.
    log_predictions(deployment, n=40, seed=22)
    _label(deployment, 29, 11)
    acc = snapshots.snapshot_compute(deployment=deployment).data["performance"]["metrics"]["accuracy"]
    assert acc["value"] == pytest.approx(0.725)
    assert acc["live_ci_low"] < 0.8 < acc["live_ci_high"]
    assert acc["status"] == "ok"
    assert not Alert.objects.filter(deployment=deployment, kind="performance").exists()


@pytest.mark.django_db
def test_the_same_accuracy_on_400_labels_alerts_with_a_readable_message(deployment):
    log_predictions(deployment, n=400, seed=23)
    _label(deployment, 290, 110)
    acc = snapshots.snapshot_compute(deployment=deployment).data["performance"]["metrics"]["accuracy"]
    assert acc["live_ci_high"] < 0.8 and acc["status"] == "alert"
    alert = Alert.objects.get(deployment=deployment, key="performance:accuracy")
    assert "over 400 labels" in alert.message and "0.725 (95% CI" in alert.message
    assert "test interval 0.8 to 0.9" in alert.message


@pytest.mark.django_db
def test_latency_percentiles_count_each_request_once(deployment):
    """One 40-row request at 100 ms and ten 1-row requests at 10 ms: per row the median would be
    100 ms; per request it is 10 ms, and rows per request is its own series."""
    mv = deployment.model_version
    now = timezone.now() - timedelta(minutes=5)

    def row(at, latency):
        return Prediction(
            project=deployment.project, deployment=deployment, model_version=mv, inputs={"x0": 0.0},
            prediction=0, latency_ms=latency, caller="key:1", source="api", created_at=at,
        )  # fmt: skip

    big = [row(now, 100.0) for _ in range(40)]
    small = [row(now + timedelta(seconds=i + 1), 10.0) for i in range(10)]
    Prediction.objects.bulk_create(big + small)
    traffic = snapshots.snapshot_compute(deployment=deployment).data["traffic"]
    assert traffic["predictions"] == 50 and traffic["requests"] == 11
    assert traffic["latency_ms"]["p50"] == pytest.approx(10.0)
    assert traffic["latency_ms"]["p99"] > 50  # the slow request is one of eleven, in the tail
    rpr = traffic["rows_per_request"]
    assert rpr["max"] == 40 and rpr["p50"] == pytest.approx(1.0) and rpr["mean"] == pytest.approx(50 / 11)


@pytest.mark.django_db
def test_drift_alert_text_says_how_much_on_how_many_rows_and_why(deployment):
    log_predictions(deployment, n=400, shift=2.0, seed=24)
    snapshots.snapshot_compute(deployment=deployment)
    alert = Alert.objects.get(deployment=deployment, key="drift:x0")
    assert alert.message.startswith("Feature x0 drifted: PSI ")
    assert "(alert level 0.15 at this volume) over 400 predictions (KS test, p < 0.001" in alert.message
    assert alert.threshold == pytest.approx(drift.alert_threshold(400, 10, psi_warn=0.1, psi_alert=0.2))
