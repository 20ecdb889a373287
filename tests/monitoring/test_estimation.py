"""Performance estimated before the labels arrive (CBPE): the maths, the snapshot fields, the
realized value filled in as labels come, the "estimated performance" alert (never on an
uncalibrated model, never on a small window), regression not estimated, the API and the page."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from datasets.selectors import locked_test_frame
from deployments.ml.estimation import (
    REGRESSION_REASON,
    calibration_text,
    confidences_for_estimate,
    estimate_classification,
)
from deployments.models import Alert, Deployment, ModelVersion, MonitoringSnapshot, Prediction
from deployments.monitoring.services import snapshots
from experiments.ml.calibration import calibration_assess, calibration_check
from experiments.ml.metrics import fast_classification_metrics
from mlplatform.artifacts import model_load
from tests.conftest import login, screenshots
from tests.monitoring.helpers import FEATURES, NUMERIC, make_deployment, make_frame

# --- the maths (no database) -------------------------------------------------------------------------


def _window(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(shift, 1.0, n)
    p1 = 1 / (1 + np.exp(-(2 * x - 0.5)))
    y = (rng.random(n) < p1).astype(int)
    return np.c_[1 - p1, p1], (p1 >= 0.5).astype(int), y


def test_interval_covers_the_realized_metric_under_covariate_shift():
    rng = np.random.default_rng(4)
    hits = {"accuracy": 0, "f1": 0}
    windows = 40
    for _ in range(windows):
        proba, pred, y = _window(rng, 300, rng.uniform(-1.5, 1.5))
        est = estimate_classification(proba, pred, positive=1, n_sim=200)
        realized = fast_classification_metrics(y, pred, proba, 2, positive=1)
        for m in hits:
            hits[m] += est[m]["ci_low"] <= realized[m] <= est[m]["ci_high"]
    assert all(h / windows >= 0.85 for h in hits.values()), hits


def test_multiclass_estimate_covers_the_realized_macro_metrics():
    rng = np.random.default_rng(7)
    hits, windows = {"accuracy": 0, "f1": 0, "roc_auc": 0}, 30
    for _ in range(windows):
        logits = rng.normal(size=(300, 3)) * 2 + np.array([rng.uniform(-1, 1), 0, 0])
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.random((300, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
        pred = proba.argmax(axis=1)
        est = estimate_classification(proba, pred, n_sim=150)
        realized = fast_classification_metrics(y, pred, proba, 3)
        for m in hits:
            hits[m] += est[m]["ci_low"] <= realized[m] <= est[m]["ci_high"]
    assert all(h / windows >= 0.85 for h in hits.values()), hits


def test_estimate_follows_the_confidences():
    sure = np.tile([0.02, 0.98], (200, 1))
    unsure = np.tile([0.4, 0.6], (200, 1))
    pred = np.ones(200, dtype=int)
    high = estimate_classification(sure, pred, n_sim=100)["accuracy"]
    low = estimate_classification(unsure, pred, n_sim=100)["accuracy"]
    assert high["value"] == pytest.approx(0.98, abs=0.01) and low["value"] == pytest.approx(0.6, abs=0.03)
    assert high["ci_low"] <= high["value"] <= high["ci_high"]


def test_calibration_check_tells_calibrated_from_overconfident():
    rng = np.random.default_rng(1)
    proba, _, y = _window(rng, 800, 0.0)
    good = calibration_check(proba, y)
    assert good["status"] == "calibrated" and 0 <= good["ece_ci_low"] < good["ece_ci_high"] < 0.05
    p1 = np.clip(proba[:, 1] * 1.6 - 0.3, 0.001, 0.999)  # pushed to the extremes: over-confident
    bad = calibration_check(np.c_[1 - p1, p1], y)
    assert bad["status"] == "miscalibrated" and bad["p_value"] < 0.01
    assert "not calibrated" in calibration_text(bad) and "ECE" in calibration_text(good)
    assert "unknown" in calibration_text(None)
    assert calibration_check(proba[:10], y[:10])["status"] == "unknown"


def test_miscalibrated_confidences_are_recalibrated_cross_fitted_and_the_estimate_uses_them():
    rng = np.random.default_rng(2)
    proba, _, y = _window(rng, 1500, 0.0)
    p1 = np.clip(proba[:, 1] * 1.6 - 0.3, 0.001, 0.999)
    over = np.c_[1 - p1, p1]
    verdict = calibration_assess(over, y, source="locked test set")
    assert verdict["recalibration"] == "isotonic" and verdict["calibrator"]["maps"]
    assert verdict["raw"]["status"] == "miscalibrated" and verdict["ece"] < verdict["raw"]["ece"] / 2
    text = calibration_text(verdict | {"status": "calibrated"})
    assert "recalibrated (isotonic, fitted on the locked test set)" in text and "cross-fitted" in text
    fresh, fresh_pred, fresh_y = _window(rng, 400, 0.5)
    q1 = np.clip(fresh[:, 1] * 1.6 - 0.3, 0.001, 0.999)
    raw = estimate_classification(np.c_[1 - q1, q1], fresh_pred, n_sim=100)["accuracy"]["value"]
    fixed = estimate_classification(confidences_for_estimate(np.c_[1 - q1, q1], verdict), fresh_pred, n_sim=100)[
        "accuracy"
    ]["value"]
    truth = float((fresh_pred == fresh_y).mean())
    assert abs(fixed - truth) < abs(raw - truth)


# --- snapshots, alerts, API, page --------------------------------------------------------------------


def _calibrate(mv: ModelVersion) -> None:
    """The verdict the final evaluation stores: the model's calibration on its locked test rows."""
    test = locked_test_frame(mv.dataset_version, purpose="final_evaluation")
    pipe = model_load(mv.artifact_key, mv.sha256)
    verdict = calibration_assess(
        pipe.predict_proba(test[FEATURES]), test["label"].to_numpy().astype(int), source="locked test set"
    )
    ModelVersion.objects.filter(pk=mv.pk).update(metrics=(mv.metrics or {}) | {"calibration": verdict})


def _log(deployment: Deployment, *, n: int, shift: float = 0.0, minutes_ago: float = 10.0, seed: int = 1) -> None:
    frame = make_frame(n=n, seed=seed)
    frame["x0"] = frame["x0"] + shift
    mv = deployment.model_version
    pipe = model_load(mv.artifact_key, mv.sha256)
    proba = pipe.predict_proba(frame[FEATURES])
    pred = pipe.predict(frame[FEATURES])
    now = timezone.now() - timedelta(minutes=minutes_ago)
    Prediction.objects.bulk_create(
        Prediction(
            project=deployment.project,
            deployment=deployment,
            model_version=mv,
            inputs={**{c: float(frame.at[i, c]) for c in NUMERIC}, "color": frame.at[i, "color"]},
            prediction=int(pred[i]),
            confidence=float(proba[i].max()),
            probabilities={"0": float(proba[i, 0]), "1": float(proba[i, 1])},
            created_at=now + timedelta(milliseconds=i),
            actual=None,
        )
        for i in range(n)
    )


def _label(deployment: Deployment) -> None:
    """Ground truth for every logged row (the frame's own labels, same seed as `_log`)."""
    frame = make_frame(n=Prediction.objects.filter(deployment=deployment).count(), seed=1)
    rows = list(Prediction.objects.filter(deployment=deployment).order_by("created_at"))
    for row, y in zip(rows, frame["label"], strict=True):
        row.actual, row.actual_at, row.actual_source = int(y), timezone.now(), "feedback"
    Prediction.objects.bulk_update(rows, ["actual", "actual_at", "actual_source"])


@pytest.mark.django_db
def test_snapshot_estimates_then_shows_realized_when_labels_come(team):
    deployment = make_deployment(team.project, team.owner)
    _calibrate(deployment.model_version)
    deployment.refresh_from_db()
    _log(deployment, n=300)
    now = timezone.now()
    first = snapshots.snapshot_compute(deployment=deployment, window_end=now)
    est = first.data["estimation"]
    metric = team.project.success_metric  # the project's success metric (f1 here) is the one judged
    assert est["metric"] == metric and est["n_rows"] == 300 and est["reliable"]
    assert set(est["metrics"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc"}
    acc = est["metrics"][metric]
    assert acc["ci_low"] < acc["value"] < acc["ci_high"]
    assert est["realized"]["n_labels"] == 0 and est["realized"]["value"] is None
    assert "ECE" in est["calibration_text"] and est["status"] in ("ok", "alert")
    # Labels arrive weeks later (here: a minute): the next snapshot fills in the realized value.
    _label(deployment)
    snapshots.snapshot_compute(deployment=deployment, window_end=now + timedelta(minutes=61))
    realized = MonitoringSnapshot.objects.get(pk=first.pk).data["estimation"]["realized"]
    assert realized["n_labels"] == 300 and realized["ci_low"] <= realized["value"] <= realized["ci_high"]
    assert acc["ci_low"] - 0.05 <= realized["value"] <= acc["ci_high"] + 0.05


@pytest.mark.django_db
def test_batch_predictions_living_in_segments_are_counted_drift_read_and_estimated(team):
    """A batch's predictions have no Prediction row (columnar store): the snapshot counts them from
    the segment rows, reads their features for drift and their probabilities for the estimate,
    and gives the same estimate as the same predictions logged as rows."""
    import pyarrow as pa

    from deployments.batch.log_source import LogChunk, LogTarget, _segment_chunk
    from jobs.models import Job

    as_rows = make_deployment(team.project, team.owner, name="rows")
    _calibrate(as_rows.model_version)
    as_rows.refresh_from_db()
    _log(as_rows, n=300)
    in_segments = Deployment.objects.create(project=team.project, name="batch", model_version=as_rows.model_version)
    frame = make_frame(n=300, seed=1)
    pipe = model_load(in_segments.model_version.artifact_key, in_segments.model_version.sha256)
    proba = pipe.predict_proba(frame[FEATURES])
    job = Job.objects.create(project=team.project, kind="deployment.batch", created_by=team.owner)
    chunk = LogChunk(
        pa.Table.from_pandas(frame[FEATURES], preserve_index=False),
        pipe.predict(frame[FEATURES]),
        proba.max(1),
        proba,
        3.0,
    )
    _segment_chunk(LogTarget(in_segments, in_segments.model_version, job, ["0", "1"]), chunk)
    assert not Prediction.objects.filter(deployment=in_segments).exists()

    end = timezone.now() + timedelta(seconds=1)
    batch = snapshots.snapshot_compute(deployment=in_segments, window_end=end).data
    rows = snapshots.snapshot_compute(deployment=as_rows, window_end=end).data
    assert batch["traffic"]["predictions"] == 300 and batch["traffic"]["by_source"] == {"batch": 300}
    assert batch["drift"]["sample_size"] == rows["drift"]["sample_size"] == 300
    assert batch["estimation"]["n_rows"] == rows["estimation"]["n_rows"] == 300
    metric = team.project.success_metric
    # The same predictions in another order (a chunk's rows share one time): equal up to the
    # estimate's simulation noise, far inside its interval.
    estimate = rows["estimation"]["metrics"][metric]
    assert batch["estimation"]["metrics"][metric]["value"] == pytest.approx(estimate["value"], abs=0.005)
    assert estimate["ci_high"] - estimate["ci_low"] > 0.02


@pytest.mark.django_db
def test_estimated_alert_only_when_calibrated_with_enough_rows_and_the_interval_clear(team):
    deployment = make_deployment(team.project, team.owner)
    team.project.success_metric, team.project.success_threshold = "accuracy", 0.99
    team.project.save(update_fields=["success_metric", "success_threshold"])
    _log(deployment, n=300, shift=1.0)
    key = "estimated_performance:accuracy"
    # Calibration unknown (no verdict stored): the estimate is shown as unreliable, nothing fires.
    snap = snapshots.snapshot_compute(deployment=deployment)
    assert snap.data["estimation"]["status"] == "unreliable"
    assert not Alert.objects.filter(deployment=deployment, key=key).exists()
    _calibrate(deployment.model_version)
    deployment = Deployment.objects.get(pk=deployment.pk)
    # Too few rows in the window: no verdict.
    few = snapshots.snapshot_compute(deployment=deployment, window_minutes=1)
    assert few.data["estimation"]["status"] == "insufficient"
    assert not Alert.objects.filter(deployment=deployment, key=key).exists()
    snap = snapshots.snapshot_compute(deployment=deployment)
    est = snap.data["estimation"]
    assert est["status"] == "alert" and est["threshold_source"] == "the project's success threshold"
    alert = Alert.objects.get(deployment=deployment, key=key, state="firing")
    assert alert.kind == "estimated_performance" and "without labels" in alert.message
    # A bar the interval clears: resolved.
    team.project.success_threshold = 0.3
    team.project.save(update_fields=["success_threshold"])
    snapshots.snapshot_compute(deployment=Deployment.objects.get(pk=deployment.pk))
    assert Alert.objects.get(pk=alert.pk).state == "resolved"


@pytest.mark.django_db
def test_regression_is_not_estimated(team):
    deployment = make_deployment(team.project, team.owner, task="regression")
    est = snapshots.snapshot_compute(deployment=deployment).data["estimation"]
    assert est == {"status": "not_estimated", "reason": REGRESSION_REASON}


@pytest.mark.django_db
def test_api_returns_the_estimate_and_its_series(client, team):
    deployment = make_deployment(team.project, team.owner)
    _calibrate(deployment.model_version)
    _log(deployment, n=200)
    snapshots.snapshot_compute(deployment=Deployment.objects.get(pk=deployment.pk))
    client.force_login(team.viewer)
    body = client.get(f"/api/v1/deployments/{deployment.pk}/monitoring/").json()
    est = body["latest"]["estimation"]
    assert est["n_rows"] == 200 and est["calibration"]["status"] == "calibrated"
    point = body["series"][-1]["estimation"]
    assert point["value"] == est["metrics"][est["metric"]]["value"] and point["n_rows"] == 200
    client.force_login(team.outsider)
    assert client.get(f"/api/v1/deployments/{deployment.pk}/monitoring/").status_code == 404


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_browser_estimate_band_and_realized(page, team):
    deployment = make_deployment(team.project, team.owner)
    _calibrate(deployment.model_version)
    deployment = Deployment.objects.get(pk=deployment.pk)
    now = timezone.now()
    for hour in range(5, 0, -1):  # five hourly windows; the older three get their labels later
        _log(deployment, n=150, shift=0.3 * (5 - hour), minutes_ago=60 * hour - 30, seed=hour)
    for hour in range(4, -1, -1):
        if hour == 1:
            labelled = Prediction.objects.filter(deployment=deployment, created_at__lt=now - timedelta(hours=2))
            labelled = list(labelled)
            for i, row in enumerate(labelled):
                row.actual, row.actual_at = row.prediction if i % 5 else 1 - int(row.prediction), now
            Prediction.objects.bulk_update(labelled, ["actual", "actual_at"])
        snapshots.snapshot_compute(deployment=deployment, window_end=now - timedelta(hours=hour), window_minutes=60)
    login(page, team.viewer.username)
    page.goto(f"/projects/{team.project.pk}/deployments/{deployment.pk}/monitoring/?range=24h")
    page.wait_for_url(re.compile(r"/monitoring/\?range=24h$"))
    page.wait_for_selector("#chart-estimation .main-svg")
    assert "ECE" in page.locator("#calibration").text_content()
    assert page.locator("#estimation-latest tr[data-kind=estimated] td.num").first.text_content().strip()
    page.locator("#estimation").scroll_into_view_if_needed()
    screenshots(page, "monitoring-estimation")
    for width in (1280, 390):  # the card itself, close up
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(400)  # Plotly's responsive resize
        page.locator("#estimation").screenshot(path=f"var/screenshots/monitoring-estimation-card-{width}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.django_db
def test_openapi_schema_documents_the_estimate(api):
    schema = api("viewer").get("/api/v1/schema/", {"format": "json"}).json()
    parts = schema["components"]["schemas"]
    assert {"metric", "metrics", "n_rows", "calibration_text", "realized", "status"} <= set(
        parts["EstimationSchema"]["properties"]
    )
    assert "estimation" in parts["SnapshotSchema"]["properties"]
    assert "estimation" in parts["SeriesPointSchema"]["properties"]
    op = schema["paths"]["/api/v1/deployments/{id}/monitoring/"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/MonitoringSchema")
