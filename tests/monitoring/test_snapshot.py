"""Snapshots, alert rules, deduplication, notifications and the beat scheduler (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core import mail
from django.utils import timezone

from deployments.models import Alert, Deployment, MonitoringSnapshot
from deployments.monitoring.services import config as monitoring_config
from deployments.monitoring.services import snapshots
from deployments.monitoring.services.snapshots import schedule_due_snapshots
from jobs.models import Job
from tests.monitoring.helpers import log_predictions, make_deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


def test_snapshot_without_drift_is_quiet(deployment):
    preds = log_predictions(deployment, n=400, shift=0.0, seed=11)
    snap = snapshots.snapshot_compute(deployment=deployment)
    data = snap.data
    assert data["traffic"]["predictions"] == 400
    latencies = np.array([p.latency_ms for p in preds])
    assert data["traffic"]["latency_ms"]["p95"] == pytest.approx(np.percentile(latencies, 95))
    assert data["drift"]["sample_size"] == 400
    statuses = {f["feature"]: f["status"] for f in data["drift"]["features"]}
    assert set(statuses) == {"x0", "x1", "x2", "x3", "color"}
    assert all(s in ("ok", "warn") for s in statuses.values()), statuses
    assert data["outputs"]["confidence"]["status"] in ("ok", "warn")
    assert not Alert.objects.filter(deployment=deployment, kind="drift").exists()
    deployment.refresh_from_db()
    assert deployment.last_snapshot_at == snap.window_end


def test_drift_fires_one_alert_per_key_and_resolves(deployment, django_capture_on_commit_callbacks):
    deployment.monitoring = {"alert_email": ["ops@example.com"], "alert_webhook_url": "https://hooks.example.com/x"}
    deployment.save()
    log_predictions(deployment, n=400, shift=2.0, new_color=True, seed=12, minutes_ago=10)
    with django_capture_on_commit_callbacks(execute=True):
        snap = snapshots.snapshot_compute(deployment=deployment)
    x0 = next(f for f in snap.data["drift"]["features"] if f["feature"] == "x0")
    assert x0["status"] == "alert" and x0["psi"] > 0.2 and x0["p_value"] < 1e-6
    color = next(f for f in snap.data["drift"]["features"] if f["feature"] == "color")
    assert color["status"] == "alert" and color["current_shares"][-1] > 0.3
    firing = set(Alert.objects.filter(deployment=deployment, state="firing").values_list("key", flat=True))
    assert {"drift:x0", "drift:color", "unseen:color"} <= firing
    assert "drift:x1" not in firing
    assert any("x0" in m.subject for m in mail.outbox) and mail.outbox[0].to == ["ops@example.com"]
    hooks = Job.objects.filter(kind="webhook.deliver", project=deployment.project)
    assert hooks.count() == len(firing)
    assert hooks.first().params["event"] == "alert.firing"

    # The same condition again: no duplicate, the firing alert is refreshed.
    snapshots.snapshot_compute(deployment=deployment)
    assert Alert.objects.filter(deployment=deployment, key="drift:x0").count() == 1

    # A later, clean window resolves it; a new drift later opens a new alert (history kept).
    later = timezone.now() + timedelta(hours=3)
    log_predictions(deployment, n=400, shift=0.0, seed=13, minutes_ago=-170)
    snapshots.snapshot_compute(deployment=deployment, window_end=later, window_minutes=60)
    alert = Alert.objects.get(deployment=deployment, key="drift:x0")
    assert alert.state == "resolved" and alert.resolved_at is not None


def test_ground_truth_below_the_test_interval_fires_a_performance_alert(deployment):
    log_predictions(deployment, n=200, seed=14, label=True, flip=True)
    snap = snapshots.snapshot_compute(deployment=deployment)
    perf = snap.data["performance"]
    assert perf["n_labels"] == 200
    assert perf["metrics"]["accuracy"]["value"] < 0.3
    assert perf["metrics"]["accuracy"]["status"] == "alert"
    alert = Alert.objects.get(deployment=deployment, key="performance:accuracy")
    assert alert.state == "firing" and alert.threshold == pytest.approx(0.8)


def test_correct_ground_truth_is_within_the_interval(deployment):
    log_predictions(deployment, n=300, seed=15, label=True)
    perf = snapshots.snapshot_compute(deployment=deployment).data["performance"]
    assert perf["metrics"]["accuracy"]["value"] > 0.8
    assert perf["status"] == "ok"


def test_too_few_labels_give_no_verdict(deployment):
    log_predictions(deployment, n=10, seed=16, label=True, flip=True)
    perf = snapshots.snapshot_compute(deployment=deployment).data["performance"]
    assert perf["status"] == "insufficient"
    assert not Alert.objects.filter(deployment=deployment, kind="performance").exists()


def test_thresholds_are_configurable_per_deployment(deployment):
    log_predictions(deployment, n=400, shift=0.35, seed=17)
    x0 = next(
        f for f in snapshots.snapshot_compute(deployment=deployment).data["drift"]["features"] if f["feature"] == "x0"
    )
    monitoring_config.monitoring_settings_update(
        deployment=deployment, actor=None, values={"psi_warn": 0.01, "psi_alert": x0["psi"] / 2}
    )
    snap = snapshots.snapshot_compute(deployment=deployment)
    x0 = next(f for f in snap.data["drift"]["features"] if f["feature"] == "x0")
    assert x0["status"] == "alert"
    assert Alert.objects.filter(deployment=deployment, key="drift:x0", state="firing").exists()


def test_scheduler_queues_due_deployments_once(team):
    due = make_deployment(team.project, team.owner, name="due")
    fresh = make_deployment(team.project, team.owner, name="fresh", seed=1)
    Deployment.objects.filter(pk=fresh.pk).update(last_snapshot_at=timezone.now() - timedelta(minutes=5))
    assert schedule_due_snapshots() == 1
    assert schedule_due_snapshots() == 0  # claimed: no duplicate
    job = Job.objects.get(kind="monitoring.snapshot")
    assert job.params["deployment_id"] == due.pk
    Deployment.objects.filter(pk=fresh.pk).update(last_snapshot_at=timezone.now() - timedelta(minutes=61))
    assert schedule_due_snapshots() == 1


def test_snapshot_job_handler_is_idempotent(deployment):
    from deployments.monitoring.job_handlers import snapshot as handler
    from jobs.runner import job_enqueue

    log_predictions(deployment, n=100, seed=18)
    job = job_enqueue(project=deployment.project, kind="monitoring.snapshot", params={"deployment_id": deployment.pk})

    class Ctx:
        def progress(self, *a, **k):
            pass

    first = handler(job, Ctx())
    second = handler(job, Ctx())
    assert first["snapshot_id"] == second["snapshot_id"]
    assert MonitoringSnapshot.objects.filter(deployment=deployment).count() == 1


def test_workflow_stage_shows_health(team, deployment):
    from projects.workflow import workflow_for

    stage = next(s for s in workflow_for(project=team.project) if s.key == "monitor")
    assert stage.state == "in_progress" and "unknown" in stage.detail
    log_predictions(deployment, n=300, shift=2.5, seed=19)
    snapshots.snapshot_compute(deployment=deployment)
    stage = next(s for s in workflow_for(project=team.project) if s.key == "monitor")
    assert stage.state == "blocked" and "critical" in stage.detail
    assert stage.url.endswith(f"/deployments/{deployment.pk}/monitoring/")


def test_sql_extraction_agrees_with_python_on_awkward_values(deployment):
    from deployments.ml import drift
    from deployments.models import Prediction
    from deployments.monitoring.window import window_columns as _window_columns

    odd = [
        {"x0": "1.5", "x1": None, "x2": True, "x3": "abc", "color": "red"},
        {"x0": 2, "x1": "", "x2": -3e-5, "x3": 1e21, "color": True},
        {"x0": None, "x1": 0.25, "x2": "  7 ", "x3": [1], "color": 3.0},
        {"x1": 1, "color": ""},
    ]
    now = timezone.now() - timedelta(minutes=1)
    for i, inputs in enumerate(odd):
        Prediction.objects.create(
            project=deployment.project,
            deployment=deployment,
            model_version=deployment.model_version,
            inputs=inputs,
            prediction=1,
            confidence=0.9,
            created_at=now + timedelta(milliseconds=i),
        )
    ref = deployment.model_version.reference_stats
    n, cols, preds, confs = _window_columns(deployment, now - timedelta(hours=1), timezone.now(), 100, ref)
    assert n == 4
    newest_first = list(reversed(odd))
    for name in ("x0", "x1", "x3"):
        python = drift.to_numeric(
            [row.get(name) if not isinstance(row.get(name), list) else None for row in newest_first]
        )
        np.testing.assert_array_equal(np.array(cols[name], dtype=float), python)
    # A JSON boolean in a numeric feature counts as 1.0 in Python and as missing in SQL (a
    # bad type for a number); the schema validation upstream refuses it before it is logged.
    assert cols["x2"][3] is None and cols["x2"][1] == pytest.approx(7.0)
    assert cols["color"] == ["", "3", "True", "red"]
    assert drift.categorical_counts(cols["color"], {"red"}) == drift.categorical_counts(
        [row.get("color") for row in newest_first], {"red"}
    )
    assert preds == ["1"] * 4 and confs == [0.9] * 4


def test_auto_retrain_starts_once_when_a_drift_alert_fires(deployment):
    deployment.auto_retrain = True
    deployment.save()
    log_predictions(deployment, n=300, shift=2.0, seed=20)
    snapshots.snapshot_compute(deployment=deployment)
    jobs = Job.objects.filter(kind="monitoring.retrain", target_id=deployment.pk)
    assert jobs.count() == 1 and jobs.get().params["reason"].startswith("auto: drift:")
    snapshots.snapshot_compute(deployment=deployment)  # still firing: nothing new
    assert jobs.count() == 1


def test_no_auto_retrain_by_default(deployment):
    log_predictions(deployment, n=300, shift=2.0, seed=21)
    snapshots.snapshot_compute(deployment=deployment)
    assert not Job.objects.filter(kind="monitoring.retrain").exists()


def test_monitoring_panel_renders_the_health_summary(deployment):
    from django.template.loader import render_to_string

    html = render_to_string("deployments/_monitoring_panel.html", {"deployment": deployment})
    assert "No snapshot yet" in html and "health-unknown" in html
    log_predictions(deployment, n=300, shift=2.0, seed=22)
    snapshots.snapshot_compute(deployment=deployment)
    html = render_to_string("deployments/_monitoring_panel.html", {"deployment": deployment})
    assert "health-critical" in html and f"/deployments/{deployment.pk}/monitoring/" in html
