from __future__ import annotations

import pytest

from deployments.models import ApiKey, Deployment, DeploymentChange, Prediction
from jobs.models import Job
from projects.models import AuditEvent
from tests.deployments.test_predict_api import GOOD, key_client, post

pytestmark = pytest.mark.django_db


def create(client, project, version, **extra):
    return client.post(
        "/api/v1/deployments/",
        {"project": project.pk, "name": "loans", "model_version": version.pk, **extra},
        format="json",
    )


def test_create_deployment_roles_and_scoping(team, api, registered):
    v = registered()
    assert create(api("outsider"), team.project, v).status_code == 404
    assert create(api("viewer"), team.project, v).status_code == 403
    assert create(api("reviewer"), team.project, v).status_code == 403
    # a model version of another project is refused naming the field
    r = api("outsider").post(
        "/api/v1/deployments/", {"project": team.other_project.pk, "name": "x", "model_version": v.pk}, format="json"
    )
    assert r.status_code == 400 and "model_version" in r.json()["errors"]
    r = create(api("editor"), team.project, v, review_threshold=0.6)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["active_version"] == 1 and body["status"] == "active" and body["review_threshold"] == 0.6
    assert Deployment.objects.count() == 1
    assert DeploymentChange.objects.get().action == "deploy"
    assert AuditEvent.objects.filter(action="deployment.created").exists()
    assert api("outsider").get(f"/api/v1/deployments/{body['id']}/").status_code == 404
    assert api("outsider").get("/api/v1/deployments/").json()["results"] == []
    detail = api("viewer").get(f"/api/v1/deployments/{body['id']}/").json()
    assert detail["history"][0]["action"] == "deploy" and detail["gate"]["passed"] is True


def test_create_rejects_bad_input(team, api, registered):
    v = registered()
    r = create(api("editor"), team.project, v, review_threshold=2)
    assert r.status_code == 400 and "review_threshold" in r.json()["errors"]
    r = create(api("editor"), team.project, v, unknown_category_policy="ignore")
    assert r.status_code == 400 and "'ignore' is not valid: use " in r.json()["errors"]["unknown_category_policy"][0]
    assert "allow" in r.json()["errors"]["unknown_category_policy"][0]
    r = api("editor").post("/api/v1/deployments/", {"project": team.project.pk, "model_version": v.pk}, format="json")
    assert r.status_code == 400 and "name" in r.json()["errors"]
    assert not Deployment.objects.exists()


def test_gate_blocks_and_only_an_owner_overrides_with_a_justification(team, api, registered):
    v = registered(f1=0.65, ci=(0.6, 0.7))  # below the success threshold 0.7
    r = create(api("editor"), team.project, v)
    assert r.status_code == 409
    assert "success threshold" in " ".join(r.json()["errors"]["model_version"])
    r = create(api("editor"), team.project, v, justification="Pilot on 5% of traffic, agreed with risk team.")
    assert r.status_code == 403
    r = create(api("owner"), team.project, v, justification="too short")
    assert r.status_code == 400 and "justification" in r.json()["errors"]
    assert not Deployment.objects.exists()
    r = create(api("owner"), team.project, v, justification="Pilot on 5% of traffic, agreed with risk team.")
    assert r.status_code == 201, r.content
    override = r.json()["gate_override"]
    assert override["by"] == team.owner.username and "Pilot" in override["justification"]
    assert AuditEvent.objects.filter(action="gate.overridden").exists()


def test_webhook_events_are_queued_for_registry_and_deployment(team, api, go_project, registered):
    go_project.webhook_url = "https://ci.example.com/hook"
    go_project.webhook_secret = "s3cret"
    go_project.save()
    v1 = registered()
    v2 = registered(seed=1)
    d = create(api("editor"), team.project, v1).json()
    api("editor").post(f"/api/v1/deployments/{d['id']}/promote/", {"model_version": v2.pk}, format="json")
    api("editor").post(f"/api/v1/deployments/{d['id']}/rollback/", {}, format="json")
    events = [j.params["event"] for j in Job.objects.filter(kind="webhook.deliver").order_by("pk")]
    assert events == [
        "model.registered",
        "model.registered",
        "deployment.deployed",
        "deployment.deployed",
        "deployment.rolled_back",
    ]


def test_promote_then_rollback_in_one_step_and_predict_follows(team, api, registered):
    v1, v2 = registered(), registered(seed=1)
    d = Deployment.objects.get(pk=create(api("editor"), team.project, v1).json()["id"])
    client, _ = key_client(d, team.editor)
    assert post(client, d, {"instances": [GOOD]}).json()["model_version"] == 1
    assert api("viewer").post(f"/api/v1/deployments/{d.pk}/promote/", {"model_version": v2.pk}).status_code == 403
    r = api("editor").post(f"/api/v1/deployments/{d.pk}/promote/", {"model_version": v2.pk, "reason": "retrained"})
    assert r.status_code == 200 and r.json()["active_version"] == 2
    assert post(client, d, {"instances": [GOOD]}).json()["model_version"] == 2
    assert api("outsider").post(f"/api/v1/deployments/{d.pk}/rollback/").status_code == 404
    assert api("viewer").post(f"/api/v1/deployments/{d.pk}/rollback/").status_code == 403
    r = api("editor").post(f"/api/v1/deployments/{d.pk}/rollback/", {"reason": "bad recall"}, format="json")
    assert r.status_code == 200 and r.json()["active_version"] == 1
    assert post(client, d, {"instances": [GOOD]}).json()["model_version"] == 1
    versions = list(
        Prediction.objects.filter(deployment=d).order_by("created_at").values_list("model_version__version", flat=True)
    )
    assert versions == [1, 2, 1]
    history = api("viewer").get(f"/api/v1/deployments/{d.pk}/").json()["history"]
    assert [h["action"] for h in history] == ["rollback", "promote", "deploy"]
    assert history[0]["reason"] == "bad recall" and history[0]["actor"] == team.editor.username
    assert AuditEvent.objects.filter(action="deployment.rolled_back").exists()


def test_rollback_without_history_is_a_conflict(team, api, deployment):
    r = api("editor").post(f"/api/v1/deployments/{deployment.pk}/rollback/")
    assert r.status_code == 409
    deployment.refresh_from_db()
    assert deployment.model_version.version == 1


def test_pause_and_resume(team, api, deployment):
    assert api("viewer").post(f"/api/v1/deployments/{deployment.pk}/pause/").status_code == 403
    assert (
        api("editor").post(f"/api/v1/deployments/{deployment.pk}/pause/", {"reason": "incident"}).json()["status"]
        == "paused"
    )
    assert post(api("editor"), deployment, {"instances": [GOOD]}).status_code == 503
    assert api("editor").post(f"/api/v1/deployments/{deployment.pk}/resume/").json()["status"] == "active"
    assert post(api("editor"), deployment, {"instances": [GOOD]}).status_code == 200


def test_keys_are_shown_once_stored_hashed_and_revocable(team, api, deployment):
    url = f"/api/v1/deployments/{deployment.pk}/keys/"
    assert api("outsider").post(url, {"name": "app"}).status_code == 404
    assert api("viewer").post(url, {"name": "app"}).status_code == 403
    assert api("viewer").get(url).status_code == 403
    assert api("editor").post(url, {"name": ""}).status_code == 400
    r = api("editor").post(url, {"name": "loan app", "rate_per_minute": 100})
    assert r.status_code == 201
    clear = r.json()["key"]
    stored = ApiKey.objects.get()
    assert clear not in (stored.key_hash, stored.prefix) and clear.startswith(stored.prefix)
    listed = api("editor").get(url).json()
    assert "key" not in listed[0] and listed[0]["name"] == "loan app"
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 200
    revoke = f"{url}{stored.pk}/revoke/"
    assert api("viewer").post(revoke).status_code == 403
    assert api("editor").post(revoke).json()["revoked_at"]
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 401
    assert AuditEvent.objects.filter(action="api_key.revoked").exists()


def test_keys_of_another_project_cannot_be_revoked_through_mine(team, api, deployment, registered):
    other_key, _ = __import__("deployments.serving.services", fromlist=["x"]).api_key_create(
        deployment=deployment, actor=team.editor, name="mine"
    )
    url = f"/api/v1/deployments/{deployment.pk}/keys/{other_key.pk}/revoke/"
    assert api("outsider").post(url).status_code == 404


def test_shadow_version_logs_without_answering(team, api, registered):
    v1, v2 = registered(), registered(seed=1)
    d = Deployment.objects.get(pk=create(api("editor"), team.project, v1).json()["id"])
    r = api("editor").post(f"/api/v1/deployments/{d.pk}/shadow/", {"model_version": v2.pk}, format="json")
    assert r.status_code == 200 and r.json()["shadow_version"] == 2
    body = post(api("editor"), d, {"instances": [GOOD, GOOD]}).json()
    assert body["model_version"] == 1 and len(body["predictions"]) == 2
    assert Prediction.objects.filter(deployment=d, source="shadow", model_version=v2).count() == 2
    assert Prediction.objects.filter(deployment=d, source="api", model_version=v1).count() == 2


def test_patch_serving_policy(team, api, deployment):
    url = f"/api/v1/deployments/{deployment.pk}/"
    assert api("outsider").patch(url, {"review_threshold": 0.5}).status_code == 404
    assert api("viewer").patch(url, {"review_threshold": 0.5}).status_code == 403
    assert api("editor").patch(url, {"review_threshold": 1.5}).status_code == 400
    assert api("editor").patch(url, {"model_version": 99}).status_code == 400
    r = api("editor").patch(url, {"review_threshold": 0.55, "unknown_category_policy": "allow", "review_mode": "hold"})
    assert r.status_code == 200, r.content
    deployment.refresh_from_db()
    assert (deployment.review_threshold, deployment.unknown_category_policy, deployment.review_mode) == (
        0.55,
        "allow",
        "hold",
    )
    assert AuditEvent.objects.filter(action="deployment.updated").exists()
