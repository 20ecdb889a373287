"""The decision threshold of a deployed binary classifier: serving decides with it at once, logs
it per prediction, the change is audited with old and new value, the validation effect has intervals."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.models import Deployment, DeploymentChange, ModelVersion, Prediction
from deployments.rollout.services import deployment_create, deployment_promote
from experiments.ml.diagnostics import threshold_table
from projects.models import AuditEvent
from tests.deployments.test_predict_api import GOOD, key_client, post

pytestmark = pytest.mark.django_db

INSTANCES = [GOOD, {**GOOD, "color": "blue", "income": 42000.0, "score": 0.3}, {**GOOD, "income": 30000.0}]


def set_threshold(client, deployment, body):
    return client.post(f"/api/v1/deployments/{deployment.pk}/threshold/", body, format="json")


def p_yes(response) -> list[float]:
    return [p["probabilities"]["yes"] for p in response.json()["predictions"]]


def test_predictions_change_class_at_the_new_threshold_at_once(team, api, deployment):
    assert deployment.model_version.positive_class == "yes"
    client, _ = key_client(deployment, team.editor)
    before = post(client, deployment, {"instances": INSTANCES})  # caches the key and its deployment
    assert before.status_code == 200
    probs = p_yes(before)
    assert [p["prediction"] for p in before.json()["predictions"]] == ["yes" if p >= 0.5 else "no" for p in probs]
    # Just under the lowest P(yes) of the rows decided "no": those rows now become "yes".
    low = [p for p in probs if p < 0.5]
    assert low, probs  # income 30,000 scores far below 0.5
    t = round(max(min(low) - 1e-3, 1e-4), 6)
    r = set_threshold(api("editor"), deployment, {"threshold": t, "reason": "recall matters more"})
    assert r.status_code == 200, r.content
    assert r.json()["threshold"] == t and r.json()["history"][0]["details"]["to"] == t
    after = post(client, deployment, {"instances": INSTANCES})
    labels = [p["prediction"] for p in after.json()["predictions"]]
    assert labels == ["yes" if p >= t else "no" for p in p_yes(after)]
    assert labels.count("yes") == len(INSTANCES) > [p["prediction"] for p in before.json()["predictions"]].count("yes")
    for p in after.json()["predictions"]:  # the confidence is the returned class's probability
        assert p["confidence"] == pytest.approx(p["probabilities"][p["prediction"]], abs=1e-6)
    logged = {str(row.id): row.decision_threshold for row in Prediction.objects.filter(deployment=deployment)}
    assert all(logged[p["id"]] is None for p in before.json()["predictions"])
    assert all(logged[p["id"]] == t for p in after.json()["predictions"])
    # back to the most probable class
    r = set_threshold(api("editor"), deployment, {"threshold": None})
    assert r.status_code == 200 and r.json()["threshold"] is None and r.json()["effective_threshold"] == 0.5
    again = post(client, deployment, {"instances": INSTANCES})
    assert [p["prediction"] for p in again.json()["predictions"]] == [
        p["prediction"] for p in before.json()["predictions"]
    ]


def test_the_change_is_audited_with_old_and_new_and_listed(team, api, deployment):
    set_threshold(api("editor"), deployment, {"threshold": 0.35})
    set_threshold(api("owner"), deployment, {"threshold": 0.6, "reason": "fewer false alarms"})
    events = list(AuditEvent.objects.filter(action="deployment.threshold_set").order_by("id"))
    assert [(e.data["before"], e.data["after"]) for e in events] == [(None, 0.35), (0.35, 0.6)]
    assert events[1].actor == team.owner and events[1].data["reason"] == "fewer false alarms"
    assert events[1].data["positive_class"] == "yes" and events[1].data["version"] == 1
    body = api("viewer").get(f"/api/v1/deployments/{deployment.pk}/threshold/").json()
    assert [(h["details"]["from"], h["details"]["to"]) for h in body["history"]] == [(0.35, 0.6), (None, 0.35)]
    assert api("viewer").get(f"/api/v1/deployments/{deployment.pk}/").json()["decision_threshold"] == 0.6


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "abc", True, "", [0.3]])
def test_bad_thresholds_are_refused_naming_the_field(team, api, deployment, value):
    r = set_threshold(api("editor"), deployment, {"threshold": value})
    assert r.status_code == 400, r.content
    assert "threshold" in r.json()["errors"]
    deployment.refresh_from_db()
    assert deployment.decision_threshold is None
    assert not DeploymentChange.objects.filter(action="threshold").exists()
    assert not AuditEvent.objects.filter(action="deployment.threshold_set").exists()


def test_missing_or_unknown_fields_are_refused(team, api, deployment):
    r = set_threshold(api("editor"), deployment, {})
    assert r.status_code == 400 and "threshold" in r.json()["errors"]
    r = set_threshold(api("editor"), deployment, {"threshold": 0.4, "positive_class": "no"})
    assert r.status_code == 400 and "positive_class" in r.json()["errors"]
    assert Deployment.objects.get().decision_threshold is None


def test_regression_and_multiclass_have_no_threshold(team, api, registered):
    regression = registered(seed=2, task="regression")
    d = deployment_create(
        project=team.project,
        actor=team.owner,
        name="amounts",
        model_version=regression,
        justification="A regression model, deployed past the classification project's gate for this test.",
    )
    r = set_threshold(api("editor"), d, {"threshold": 0.4})
    assert r.status_code == 400 and "binary" in r.json()["errors"]["threshold"][0]
    # A three-class version (its row's classes say so): refused the same way.
    three = registered(seed=3)
    ModelVersion.objects.filter(pk=three.pk).update(classes=["no", "maybe", "yes"])
    d3 = deployment_create(project=team.project, actor=team.editor, name="three", model_version=three)
    r = set_threshold(api("editor"), d3, {"threshold": 0.4})
    assert r.status_code == 400 and "threshold" in r.json()["errors"]
    assert not DeploymentChange.objects.filter(action="threshold").exists()


def test_threshold_roles_and_cross_project(team, api, deployment):
    assert set_threshold(api("outsider"), deployment, {"threshold": 0.4}).status_code == 404
    assert api("outsider").get(f"/api/v1/deployments/{deployment.pk}/threshold/").status_code == 404
    assert set_threshold(api("viewer"), deployment, {"threshold": 0.4}).status_code == 403
    assert set_threshold(api("reviewer"), deployment, {"threshold": 0.4}).status_code == 403
    assert api("viewer").get(f"/api/v1/deployments/{deployment.pk}/threshold/").status_code == 200
    assert Deployment.objects.get().decision_threshold is None
    assert set_threshold(api("editor"), deployment, {"threshold": 0.4}).status_code == 200


def test_a_promoted_version_decides_by_its_most_probable_class(team, api, registered, deployment):
    """A threshold is tuned to one version's probabilities: it does not follow a promotion."""
    set_threshold(api("editor"), deployment, {"threshold": 0.2})
    v2 = registered(seed=1)
    deployment_promote(deployment=deployment, actor=team.editor, model_version=v2)
    body = api("editor").get(f"/api/v1/deployments/{deployment.pk}/threshold/").json()
    assert body["threshold"] is None and body["effective_threshold"] == 0.5
    r = post(api("editor"), deployment, {"instances": INSTANCES})
    assert [p["prediction"] for p in r.json()["predictions"]] == ["yes" if p >= 0.5 else "no" for p in p_yes(r)]
    assert not Prediction.objects.filter(deployment=deployment, decision_threshold__isnull=False).exists()


def test_the_validation_effect_has_intervals_and_the_best_f1(team, api, deployment):
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    scores = np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1)
    table = threshold_table(y, scores)
    run = deployment.model_version.run
    run.diagnostics = {"n_val": 400, "thresholds": table, "positive_class": "yes"}
    run.save()
    body = api("viewer").get(f"/api/v1/deployments/{deployment.pk}/threshold/").json()
    val = body["validation"]
    assert val["available"] is True and val["n_val"] == 400 and len(val["rows"]) == len(table)
    for row, source in zip(val["rows"], table, strict=True):
        assert row["threshold"] == source["threshold"]
        assert row["predicted_positive"] == source["predicted_positive"]
        for m in ("precision", "recall", "f1", "accuracy"):
            assert row[m]["value"] == pytest.approx(source[m], abs=2e-3)
            assert row[m]["ci_low"] <= row[m]["value"] <= row[m]["ci_high"]
    assert any(r["f1"]["ci_high"] - r["f1"]["ci_low"] > 0.02 for r in val["rows"])  # 400 rows: real width
    assert val["best_f1"]["f1"]["value"] == pytest.approx(max(t["f1"] for t in table), abs=2e-3)


def test_the_validation_effect_says_why_when_missing(team, api, deployment):
    body = api("viewer").get(f"/api/v1/deployments/{deployment.pk}/threshold/").json()
    assert body["validation"]["available"] is False and "diagnostics" in body["validation"]["why"]


def test_the_threshold_page_form_applies_and_reports_bad_input(team, client, deployment):
    client.force_login(team.editor)
    r = client.post(f"/deployments/{deployment.pk}/threshold/", {"threshold": "abc"}, follow=True)
    assert "threshold: a probability" in r.content.decode()
    r = client.post(f"/deployments/{deployment.pk}/threshold/", {"threshold": "1.2"}, follow=True)
    assert "threshold:" in r.content.decode()
    assert Deployment.objects.get().decision_threshold is None
    client.post(f"/deployments/{deployment.pk}/threshold/", {"threshold": "0.45"})
    assert Deployment.objects.get().active_threshold == 0.45
    client.force_login(team.viewer)
    assert client.post(f"/deployments/{deployment.pk}/threshold/", {"threshold": "0.3"}).status_code == 403
    assert Deployment.objects.get().active_threshold == 0.45


@pytest.mark.django_db(transaction=True)
def test_rows_through_the_log_queue_carry_their_threshold(team, api, deployment):
    from django.test import override_settings

    from deployments.serving import prediction_log

    set_threshold(api("editor"), deployment, {"threshold": 0.3})
    client, _ = key_client(deployment, team.editor)
    with override_settings(PREDICTION_LOG_QUEUE=True):
        assert prediction_log.enabled()
        r = post(client, deployment, {"instances": INSTANCES})
        prediction_log.flush()
    ids = [p["id"] for p in r.json()["predictions"]]
    rows = Prediction.objects.filter(pk__in=ids)
    assert rows.count() == 3 and {row.decision_threshold for row in rows} == {0.3}
    assert [p["prediction"] for p in r.json()["predictions"]] == ["yes" if p >= 0.3 else "no" for p in p_yes(r)]


@pytest.mark.django_db(transaction=True)
def test_a_batch_decides_with_the_threshold_and_logs_it(team, api, deployment, worker):
    import io

    import pandas as pd

    from tests.conftest import wait_for_job

    set_threshold(api("editor"), deployment, {"threshold": 0.15})
    dv = deployment.model_version.dataset_version
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/batch/", {"dataset_version": dv.pk}, format="json")
    assert r.status_code == 202, r.content
    job = wait_for_job(r.json()["id"])
    assert job.status == "succeeded", job.error
    url = f"/api/v1/deployments/{deployment.pk}/batch/{job.pk}/download/"
    out = pd.read_csv(io.BytesIO(b"".join(api("editor").get(url).streaming_content)))
    assert (out["prediction"] == out["proba_yes"].ge(0.15).map({True: "yes", False: "no"})).all()
    assert (out["proba_yes"] < 0.5).any() and (out["prediction"] == "yes").sum() > (out["proba_yes"] >= 0.5).sum()
    log = wait_for_job(job.result["logging_job_id"])
    assert log.status == "succeeded", log.error
    from deployments.ml import columnar
    from tests.deployments.test_batch import batch_logged

    logged = batch_logged(deployment, job.pk)  # the monitoring store holds the labels the threshold decided
    assert len(logged) == 300 and job.params["decision_threshold"] == 0.15
    assert all(r[columnar.PREDICTION] == ("yes" if r[columnar.PROBABILITIES][1] >= 0.15 else "no") for r in logged)
