from __future__ import annotations

import pytest
from django.test import Client

from deployments.models import ApiKey, Deployment, Prediction
from projects.workflow import workflow_for
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def test_registry_and_version_pages(team, registered):
    v = registered()
    viewer = client_for(team.viewer)
    page = viewer.get(f"/projects/{team.project.pk}/models/").content.decode()
    assert "v1" in page and "passes" in page
    detail = viewer.get(f"/models/{v.pk}/").content.decode()
    assert v.sha256 in detail and "Limitations" in detail and "sio.loads" in detail
    assert viewer.get(f"/models/{v.pk}/download/").status_code == 200
    outsider = client_for(team.outsider)
    assert outsider.get(f"/projects/{team.project.pk}/models/").status_code == 404
    assert outsider.get(f"/models/{v.pk}/").status_code == 404
    assert outsider.get(f"/models/{v.pk}/download/").status_code == 404


def test_deploy_from_the_ui_and_roles(team, registered):
    v = registered()
    url = f"/projects/{team.project.pk}/deployments/"
    assert client_for(team.viewer).post(url, {"model_version": v.pk, "name": "x"}).status_code == 403
    assert client_for(team.outsider).post(url, {"model_version": v.pk, "name": "x"}).status_code == 404
    r = client_for(team.editor).post(url, {"model_version": v.pk, "name": "loans"})
    d = Deployment.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/deployments/{d.pk}/"
    page = client_for(team.viewer).get(f"/deployments/{d.pk}/").content.decode()
    assert "curl -s -X POST" in page and f"/api/v1/deployments/{d.pk}/predict/" in page
    assert "Roll back" not in page  # viewers do not get the buttons


def test_deployment_page_actions_require_manage(team, deployment):
    for path in ("rollback/", "status/", "keys/", "batch/", "promote/"):
        assert (
            client_for(team.viewer)
            .post(f"/deployments/{deployment.pk}/{path}", {"status": "paused", "name": "k"})
            .status_code
            == 403
        )
        assert client_for(team.outsider).post(f"/deployments/{deployment.pk}/{path}", {"name": "k"}).status_code == 404
    assert client_for(team.viewer).post(f"/deployments/{deployment.pk}/try/", {"body": "{}"}).status_code == 403
    assert not ApiKey.objects.exists()
    deployment.refresh_from_db()
    assert deployment.status == "active"


def test_try_it_uses_the_predict_service(team, deployment):
    c = client_for(team.editor)
    body = '{"instances": [{"age": 30, "income": 50000, "score": 0.5, "color": "red", "member": false}]}'
    page = c.post(f"/deployments/{deployment.pk}/try/", {"body": body}).content.decode()
    assert "model_version" in page and Prediction.objects.filter(deployment=deployment).count() == 1
    bad = c.post(f"/deployments/{deployment.pk}/try/", {"body": '{"instances": [{"age": 30}]}'}).content.decode()
    assert "is missing" in bad and Prediction.objects.count() == 1


def test_workflow_stage(team, registered):
    v = registered()
    states = {s.key: s for s in workflow_for(project=team.project)}
    assert states["deploy"].state == "in_progress"
    from deployments.rollout.services import deployment_create

    deployment_create(project=team.project, actor=team.editor, name="loans", model_version=v)
    states = {s.key: s for s in workflow_for(project=team.project)}
    assert states["deploy"].state == "done"
