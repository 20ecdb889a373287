"""Retiring a deployment: for good, owner only, audited; predict answers 410; the history stays."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, DeploymentChange, Prediction, ReviewItem
from deployments.monitoring.services.snapshots import schedule_due_snapshots
from deployments.rollout.services import deployment_update
from jobs.models import Job
from projects.models import AuditEvent
from tests.deployments.test_predict_api import GOOD, key_client, post

pytestmark = pytest.mark.django_db

REASON = "Replaced by the new scoring service; callers moved on 1 December."


def retire(client, deployment, body=None):
    return client.post(f"/api/v1/deployments/{deployment.pk}/retire/", body or {"reason": REASON}, format="json")


def test_retire_is_an_owner_action_and_others_change_nothing(team, api, deployment):
    assert retire(api("outsider"), deployment).status_code == 404
    for role in ("viewer", "reviewer", "editor"):
        r = retire(api(role), deployment)
        assert r.status_code == 403, (role, r.content)
    deployment.refresh_from_db()
    assert deployment.status == "active" and deployment.retired_at is None
    assert not AuditEvent.objects.filter(action="deployment.retired").exists()


def test_retire_needs_a_reason_naming_the_field(team, api, deployment):
    for body in ({}, {"reason": "   "}, {"reason": REASON, "force": True}):
        r = api("owner").post(f"/api/v1/deployments/{deployment.pk}/retire/", body, format="json")
        assert r.status_code == 400, (body, r.content)
        assert set(r.json()["errors"]) & {"reason", "force"}, r.json()
    deployment.refresh_from_db()
    assert deployment.status == "active"
    assert not DeploymentChange.objects.filter(action="retire").exists()


def test_after_retire_predict_is_gone_and_the_log_stays(team, api, deployment):
    client, _ = key_client(deployment, team.editor)
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 200
    assert post(api("editor"), deployment, {"instances": [GOOD]}).status_code == 200
    logged = Prediction.objects.filter(deployment=deployment).count()
    assert logged == 2

    r = retire(api("owner"), deployment)
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "retired" and r.json()["retired_at"]

    for caller in (client, api("editor")):  # the cached key too: the save bumped the generation
        r = post(caller, deployment, {"instances": [GOOD]})
        assert r.status_code == 410, r.content
        assert r.json()["code"] == "gone" and "retired" in r.json()["detail"]
    assert Prediction.objects.filter(deployment=deployment).count() == logged
    # everything stays readable
    detail = api("viewer").get(f"/api/v1/deployments/{deployment.pk}/").json()
    assert detail["status"] == "retired"
    assert [h["action"] for h in detail["history"]][:2] == ["retire", "deploy"]
    assert detail["history"][0]["reason"] == REASON
    assert api("viewer").get(f"/api/v1/deployments/{deployment.pk}/monitoring/").status_code == 200
    assert api("owner").get(f"/api/v1/projects/{team.project.pk}/audit/").status_code == 200
    event = AuditEvent.objects.get(action="deployment.retired")
    assert event.actor == team.owner and event.data["reason"] == REASON


def test_a_retired_deployment_cannot_be_restarted_or_changed(team, api, registered, deployment):
    v2 = registered(seed=1)
    client = api("owner")
    assert retire(client, deployment).status_code == 200
    base = f"/api/v1/deployments/{deployment.pk}"
    attempts = [
        (f"{base}/resume/", {}),
        (f"{base}/promote/", {"model_version": v2.pk}),
        (f"{base}/rollback/", {}),
        (f"{base}/shadow/", {"model_version": v2.pk}),
        (f"{base}/threshold/", {"threshold": 0.4}),
        (f"{base}/retire/", {"reason": REASON}),
        (f"{base}/keys/", {"name": "new app"}),
    ]
    for url, body in attempts:
        r = client.post(url, body, format="json")
        assert r.status_code == 409, (url, r.content)
    assert client.post(f"{base}/retrain/", {}, format="json").status_code == 409
    r = client.patch(f"{base}/", {"review_threshold": 0.5}, format="json")
    assert r.status_code == 409
    r = client.post(f"{base}/batch/", {"dataset_version": v2.dataset_version_id}, format="json")
    assert r.status_code == 410, r.content
    deployment.refresh_from_db()
    assert deployment.status == "retired" and deployment.model_version.version == 1
    assert deployment.api_keys.count() == 0
    assert DeploymentChange.objects.filter(deployment=deployment).count() == 2  # deploy, retire
    assert not Job.objects.filter(kind__in=["deployment.batch", "monitoring.retrain"]).exists()


def test_retire_closes_waiting_review_items_and_keeps_decided_ones(team, api, deployment):
    deployment_update(deployment=deployment, actor=team.editor, review_threshold=1.0)  # everything to review
    r = post(api("editor"), deployment, {"instances": [GOOD, {**GOOD, "color": "blue"}, GOOD]})
    ids = [p["review_id"] for p in r.json()["predictions"]]
    assert len(ids) == 3 and all(ids)
    assert api("reviewer").post(f"/api/v1/reviews/{ids[0]}/approve/", {}, format="json").status_code == 200
    assert retire(api("owner"), deployment).status_code == 200
    statuses = dict(ReviewItem.objects.filter(deployment=deployment).values_list("pk", "status"))
    assert statuses == {ids[0]: "approved", ids[1]: "closed", ids[2]: "closed"}
    pending = api("reviewer").get(f"/api/v1/reviews/?project={team.project.pk}&status=pending").json()
    assert pending["results"] == []
    r = api("reviewer").post(f"/api/v1/reviews/{ids[1]}/approve/", {}, format="json")
    assert r.status_code == 409
    assert AuditEvent.objects.get(action="deployment.retired").data["reviews_closed"] == 2
    assert Prediction.objects.filter(deployment=deployment).count() == 3


def test_the_monitoring_beat_skips_a_retired_deployment(team, api, deployment):
    assert retire(api("owner"), deployment).status_code == 200
    assert schedule_due_snapshots() == 0
    assert not Job.objects.filter(kind="monitoring.snapshot").exists()
    Deployment.objects.filter(pk=deployment.pk).update(auto_retrain=True)  # even if someone set it back
    assert schedule_due_snapshots() == 0


def test_retire_page_needs_the_name_typed(team, client, deployment):
    client.force_login(team.owner)
    r = client.post(f"/deployments/{deployment.pk}/retire/", {"reason": REASON, "confirm_name": "loan"})
    assert r.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == "active"
    r = client.post(f"/deployments/{deployment.pk}/retire/", {"reason": REASON, "confirm_name": "loans"})
    deployment.refresh_from_db()
    assert deployment.status == "retired"
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="retired"' in page and REASON in page and 'id="retire-form"' not in page
    assert 'id="promote-form"' not in page and 'id="try-form"' not in page
    client.force_login(team.editor)
    assert client.post(f"/deployments/{deployment.pk}/retire/", {"confirm_name": "loans"}).status_code == 403
    client.force_login(team.outsider)
    assert client.post(f"/deployments/{deployment.pk}/retire/", {"confirm_name": "loans"}).status_code == 404


def test_the_workflow_picture_asks_for_a_new_deployment_not_a_resume(team, api, deployment):
    assert retire(api("owner"), deployment).status_code == 200
    stages = {s["key"]: s for s in api("viewer").get(f"/api/v1/projects/{team.project.pk}/workflow/").json()}
    deploy = stages["deploy"]
    assert deploy["state"] == "in_progress" and deploy["next_step"] == "Deploy it.", deploy
    assert "paused" not in deploy["detail"]
