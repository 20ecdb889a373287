"""Monitoring API: feedback, summary, settings, snapshot, retrain, alerts; access rules on each."""

from __future__ import annotations

import pytest

from deployments.models import Alert, Prediction
from deployments.monitoring.services import snapshots
from jobs.models import Job
from projects.models import AuditEvent
from tests.monitoring.helpers import log_predictions, make_deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


def url(deployment, tail):
    return f"/api/v1/deployments/{deployment.pk}/{tail}/"


# ----------------------------------------------------------------------------- feedback


def test_feedback_single_and_bulk(api, deployment):
    preds = log_predictions(deployment, n=5, seed=1)
    res = api("editor").post(
        url(deployment, "feedback"), {"prediction_id": str(preds[0].pk), "actual": 1}, format="json"
    )
    assert res.status_code == 200, res.content
    assert res.json() == {"recorded": 1, "replaced": False, "previous_actual": None}
    p = Prediction.objects.get(pk=preds[0].pk)
    assert p.actual == 1 and p.actual_source == "feedback" and p.actual_at is not None
    items = [{"prediction_id": str(p.pk), "actual": "0"} for p in preds[1:]]
    res = api("owner").post(url(deployment, "feedback"), {"items": items}, format="json")
    assert res.status_code == 200 and res.json() == {"recorded": 4, "replaced": 0, "replaced_items": []}
    assert list(Prediction.objects.filter(pk__in=[p.pk for p in preds[1:]]).values_list("actual", flat=True)) == [0] * 4
    assert AuditEvent.objects.filter(action="deployment.feedback").count() == 2


def test_feedback_sent_twice_says_it_replaced_the_first_label(api, deployment):
    preds = log_predictions(deployment, n=3, seed=4)
    first = {"prediction_id": str(preds[0].pk), "actual": 1}
    assert api("editor").post(url(deployment, "feedback"), first, format="json").json()["replaced"] is False
    again = api("editor").post(url(deployment, "feedback"), {**first, "actual": 0}, format="json")
    assert again.status_code == 200
    assert again.json() == {"recorded": 1, "replaced": True, "previous_actual": 1}
    assert Prediction.objects.get(pk=preds[0].pk).actual == 0
    items = [{"prediction_id": str(p.pk), "actual": 1} for p in preds]
    bulk = api("editor").post(url(deployment, "feedback"), {"items": items}, format="json").json()
    assert bulk == {
        "recorded": 3,
        "replaced": 1,
        "replaced_items": [{"prediction_id": str(preds[0].pk), "previous_actual": 0}],
    }


def test_feedback_rejects_a_label_outside_the_classes_and_writes_nothing(api, deployment):
    preds = log_predictions(deployment, n=2, seed=2)
    items = [{"prediction_id": str(preds[0].pk), "actual": 1}, {"prediction_id": str(preds[1].pk), "actual": "cat"}]
    res = api("editor").post(url(deployment, "feedback"), {"items": items}, format="json")
    assert res.status_code == 400
    assert "items[1].actual" in res.json()["errors"]
    assert not Prediction.objects.filter(actual__isnull=False).exists()


def test_feedback_refuses_another_deployments_prediction(api, team, deployment):
    other = make_deployment(team.project, team.owner, name="other", seed=3)
    foreign = log_predictions(other, n=1, seed=3)[0]
    mine = log_predictions(deployment, n=1, seed=4)[0]
    items = [{"prediction_id": str(mine.pk), "actual": 1}, {"prediction_id": str(foreign.pk), "actual": 1}]
    res = api("editor").post(url(deployment, "feedback"), {"items": items}, format="json")
    assert res.status_code == 404
    assert "items[1].prediction_id" in res.json()["errors"]
    assert not Prediction.objects.filter(actual__isnull=False).exists()


def test_feedback_refuses_another_projects_prediction(api, team, deployment):
    foreign_dep = make_deployment(team.other_project, team.outsider, name="theirs", seed=5)
    foreign = log_predictions(foreign_dep, n=1, seed=5)[0]
    res = api("owner").post(url(deployment, "feedback"), {"prediction_id": str(foreign.pk), "actual": 1}, format="json")
    assert res.status_code == 404
    assert Prediction.objects.get(pk=foreign.pk).actual is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prediction_id": "not-a-uuid", "actual": 1}, "prediction_id"),
        ({"prediction_id": "0190b7a4-0000-7000-8000-000000000000"}, "actual"),
        ({"items": []}, "items"),
        ({"items": "x"}, "items"),
        ({}, "items"),
    ],
)
def test_feedback_bad_input_names_the_field(api, deployment, body, field):
    res = api("editor").post(url(deployment, "feedback"), body, format="json")
    assert res.status_code == 400
    assert field in res.json()["errors"]


def test_feedback_access(api, deployment):
    pred = log_predictions(deployment, n=1, seed=6)[0]
    body = {"prediction_id": str(pred.pk), "actual": 1}
    assert api("outsider").post(url(deployment, "feedback"), body, format="json").status_code == 404
    assert api("viewer").post(url(deployment, "feedback"), body, format="json").status_code == 403
    assert api("reviewer").post(url(deployment, "feedback"), body, format="json").status_code == 403
    assert Prediction.objects.get(pk=pred.pk).actual is None


def test_feedback_for_regression_needs_a_finite_number(api, deployment):
    mv = deployment.model_version
    mv.task_type, mv.classes = "regression", []
    mv.save()
    pred = log_predictions(deployment, n=1, seed=7)[0]
    bad = api("editor").post(
        url(deployment, "feedback"), {"prediction_id": str(pred.pk), "actual": "abc"}, format="json"
    )
    assert bad.status_code == 400 and "actual" in bad.json()["errors"]
    ok = api("editor").post(
        url(deployment, "feedback"), {"prediction_id": str(pred.pk), "actual": "2.5"}, format="json"
    )
    assert ok.status_code == 200
    assert Prediction.objects.get(pk=pred.pk).actual == 2.5


# ----------------------------------------------------------------------------- monitoring summary


def test_monitoring_summary(api, deployment):
    empty = api("viewer").get(url(deployment, "monitoring"))
    assert empty.status_code == 200 and empty.json()["latest"] is None
    assert empty.json()["health"]["state"] == "unknown"
    log_predictions(deployment, n=300, shift=2.0, seed=8)
    snapshots.snapshot_compute(deployment=deployment)
    body = api("reviewer").get(url(deployment, "monitoring")).json()
    assert body["latest"]["traffic"]["predictions"] == 300
    assert body["latest"]["drift"]["features"][0]["feature"] == "x0"  # sorted by PSI
    assert len(body["series"]) == 1 and body["series"][0]["max_psi"] > 0.2
    assert any(a["key"] == "drift:x0" for a in body["alerts"])
    assert body["health"]["state"] == "critical"
    assert body["settings"]["psi_alert"] == 0.2


def test_monitoring_summary_access(api, deployment):
    assert api("outsider").get(url(deployment, "monitoring")).status_code == 404
    assert api("outsider").get("/api/v1/deployments/999999/monitoring/").status_code == 404


def test_monitoring_settings_patch(api, deployment):
    res = api("editor").patch(url(deployment, "monitoring"), {"psi_alert": 0.3, "auto_retrain": True}, format="json")
    assert res.status_code == 200, res.content
    deployment.refresh_from_db()
    assert deployment.monitoring["psi_alert"] == 0.3 and deployment.auto_retrain is True
    for body, field in (
        ({"psi_alert": -1}, "psi_alert"),
        ({"psi_warn": 0.5}, "psi_warn"),
        ({"bogus": 1}, "bogus"),
        ({"sample_size": 10}, "sample_size"),
        ({"alert_email": ["not-an-email"]}, "alert_email"),
        ({"auto_retrain": "yes"}, "auto_retrain"),
    ):
        res = api("editor").patch(url(deployment, "monitoring"), body, format="json")
        assert res.status_code == 400 and field in res.json()["errors"], (body, res.content)
    deployment.refresh_from_db()
    assert deployment.monitoring == {"psi_alert": 0.3}
    assert api("viewer").patch(url(deployment, "monitoring"), {"psi_alert": 0.5}, format="json").status_code == 403
    assert api("outsider").patch(url(deployment, "monitoring"), {"psi_alert": 0.5}, format="json").status_code == 404


# ----------------------------------------------------------------------------- snapshot / retrain


def test_snapshot_on_demand_returns_a_job(api, deployment):
    res = api("editor").post(url(deployment, "snapshot"), {}, format="json")
    assert res.status_code == 202
    job = Job.objects.get(pk=res.json()["id"])
    assert job.kind == "monitoring.snapshot" and job.params["deployment_id"] == deployment.pk
    assert api("editor").post(url(deployment, "snapshot"), {"window_minutes": 0}, format="json").status_code == 400
    assert api("viewer").post(url(deployment, "snapshot"), {}, format="json").status_code == 403
    assert api("outsider").post(url(deployment, "snapshot"), {}, format="json").status_code == 404
    assert Job.objects.filter(kind="monitoring.snapshot").count() == 1


def test_retrain_access_and_input(api, deployment):
    assert api("viewer").post(url(deployment, "retrain"), {}, format="json").status_code == 403
    assert api("reviewer").post(url(deployment, "retrain"), {}, format="json").status_code == 403
    assert api("outsider").post(url(deployment, "retrain"), {}, format="json").status_code == 404
    bad = api("editor").post(url(deployment, "retrain"), {"holdout_fraction": 0.9}, format="json")
    assert bad.status_code == 400 and "holdout_fraction" in bad.json()["errors"]
    assert not Job.objects.filter(kind="monitoring.retrain").exists()
    ok = api("editor").post(url(deployment, "retrain"), {}, format="json")
    assert ok.status_code == 202 and ok.json()["kind"] == "monitoring.retrain"


def test_promote_refuses_a_model_that_is_not_a_challenger(api, deployment, team):
    res = api("editor").post(
        url(deployment, "challenger/promote"), {"model_version": deployment.model_version_id}, format="json"
    )
    assert res.status_code == 400 and "model_version" in res.json()["errors"]
    other = make_deployment(team.other_project, team.outsider, name="x", seed=9)
    res = api("editor").post(
        url(deployment, "challenger/promote"), {"model_version": other.model_version_id}, format="json"
    )
    assert res.status_code == 400
    assert (
        api("viewer").post(url(deployment, "challenger/promote"), {"model_version": 1}, format="json").status_code
        == 403
    )


# ----------------------------------------------------------------------------- alerts


def _fire(deployment):
    log_predictions(deployment, n=300, shift=2.0, seed=10)
    snapshots.snapshot_compute(deployment=deployment)
    return Alert.objects.get(deployment=deployment, key="drift:x0")


def test_alert_list_is_scoped(api, team, deployment):
    alert = _fire(deployment)
    theirs = make_deployment(team.other_project, team.outsider, name="theirs", seed=11)
    _fire(theirs)
    mine = api("viewer").get("/api/v1/alerts/").json()
    keys = {(a["deployment"], a["key"]) for a in mine["results"]}
    assert (deployment.pk, "drift:x0") in keys and all(d == deployment.pk for d, _ in keys)
    filtered = api("viewer").get(f"/api/v1/alerts/?deployment={deployment.pk}&state=firing").json()
    assert alert.pk in [a["id"] for a in filtered["results"]]
    outsider = api("outsider").get("/api/v1/alerts/").json()
    assert all(a["deployment"] == theirs.pk for a in outsider["results"])


def test_acknowledge_alert(api, deployment):
    alert = _fire(deployment)
    ack = f"/api/v1/alerts/{alert.pk}/acknowledge/"
    assert api("outsider").post(ack).status_code == 404
    assert api("reviewer").post(ack).status_code == 403
    assert api("viewer").post(ack).status_code == 403
    res = api("editor").post(ack)
    assert res.status_code == 200 and res.json()["acknowledged_by"] == "eddie"
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.state == "firing"
    assert AuditEvent.objects.filter(action="alert.acknowledge").count() == 1
