"""Register, go / no-go and deploy from the model pages (the same services as the API): each
refusal answers under its control and changes nothing; outsiders get 404, wrong roles 403."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, ModelVersion
from deployments.registry.services import model_version_prepare
from jobs.models import Job
from projects.workflow import workflow_for
from tests.deployments.conftest import FEATURES, make_evaluated_run
from tests.deployments.test_views import client_for

pytestmark = pytest.mark.django_db


def test_register_an_evaluated_run_from_its_page(team, go_project):
    run = make_evaluated_run(go_project, team.owner)
    # the overview's next step links to the register form of the evaluated run
    step = {s.key: s for s in workflow_for(project=go_project)}["deploy"]
    assert step.state == "todo" and step.url == f"/runs/{run.pk}/#register"
    editor = client_for(team.editor)
    page = editor.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="register-form"' in page and "Register this model" in page
    assert client_for(team.viewer).post(f"/runs/{run.pk}/register/").status_code == 403
    assert client_for(team.reviewer).post(f"/runs/{run.pk}/register/").status_code == 403
    assert client_for(team.outsider).post(f"/runs/{run.pk}/register/").status_code == 404
    assert not ModelVersion.objects.exists()
    r = editor.post(f"/runs/{run.pk}/register/")
    version = ModelVersion.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/models/{version.pk}/"
    job = Job.objects.get(kind="model_version.prepare", target_id=version.pk)
    page = editor.get(f"/models/{version.pk}/").content.decode()
    assert f'data-job-id="{job.pk}"' in page and "Preparing this version" in page
    page = editor.get(f"/runs/{run.pk}/").content.decode()
    assert "Registered as" in page and 'id="register-form"' not in page
    # twice: refused with the reason, next to the form; nothing new
    r = editor.post(f"/runs/{run.pk}/register/", follow=True)
    assert "already registered as version 1" in r.content.decode()
    assert ModelVersion.objects.count() == 1


def test_a_run_that_was_not_evaluated_cannot_be_registered(team, go_project):
    run = make_evaluated_run(go_project, team.owner)
    other = type(run).objects.create(
        project=run.project, experiment=run.experiment, algorithm="decision_tree", status="succeeded"
    )
    page = client_for(team.editor).get(f"/runs/{other.pk}/").content.decode()
    assert 'id="register-form"' not in page
    r = client_for(team.editor).post(f"/runs/{other.pk}/register/", follow=True)
    assert "Only the run chosen by the experiment" in r.content.decode()
    assert not ModelVersion.objects.exists()


@pytest.fixture
def ready_version(team, go_project):
    from deployments.registry.services import model_version_register

    version = model_version_register(run=make_evaluated_run(go_project, team.owner), actor=team.owner)
    return model_version_prepare(version=version, features=FEATURES)


def test_go_no_go_on_the_version_page(team, ready_version):
    url = f"/models/{ready_version.pk}/decide/"
    project = ready_version.project
    assert client_for(team.editor).post(url, {"decision": "no_go", "decision_rationale": "x"}).status_code == 403
    assert client_for(team.outsider).post(url, {"decision": "no_go", "decision_rationale": "x"}).status_code == 404
    owner = client_for(team.owner)
    # no rationale: the answer is under the rationale, the decision stays go
    r = owner.post(url, {"decision": "no_go", "decision_rationale": "  "})
    assert r.status_code == 400
    page = r.content.decode()
    rationale = page[page.index('id="decide-rationale"') :]
    assert "Explain the decision." in rationale[: rationale.index("</div>")]
    project.refresh_from_db()
    assert project.decision == "go"
    r = owner.post(url, {"decision": "no_go", "decision_rationale": "Labels are late this quarter."})
    assert r.status_code == 302 and r["Location"] == f"/models/{ready_version.pk}/#decide"
    project.refresh_from_db()
    assert project.decision == "no_go" and project.decided_by == team.owner
    page = owner.get(f"/models/{ready_version.pk}/").content.decode()
    assert 'id="deploy-gate" data-passed="0"' in page and "not go" in page


def test_deploy_from_the_version_page(team, ready_version):
    url = f"/models/{ready_version.pk}/deploy/"
    assert client_for(team.viewer).post(url, {"name": "loans"}).status_code == 403
    assert client_for(team.reviewer).post(url, {"name": "loans"}).status_code == 403
    assert client_for(team.outsider).post(url, {"name": "loans"}).status_code == 404
    editor = client_for(team.editor)
    # a threshold that is not a number, then one out of range: each under its field, nothing deployed
    for bad in ("high", "1.5"):
        r = editor.post(url, {"name": "loans", "review_threshold": bad})
        assert r.status_code == 400
        page = r.content.decode()
        field = page[page.index('id="deploy-review"') :]
        assert "between 0 and 1" in field[: field.index("</div>")]
        assert 'value="loans"' in page  # what was typed is kept
    r = editor.post(url, {"name": "", "review_threshold": "0.7"})
    assert r.status_code == 400 and "Give the deployment a name." in r.content.decode()
    assert not Deployment.objects.exists()
    r = editor.post(url, {"name": "loans", "review_threshold": "0.7"})
    d = Deployment.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/deployments/{d.pk}/"
    assert d.model_version_id == ready_version.pk and d.review_threshold == 0.7


def test_deploy_needs_the_go_decision(team, ready_version):
    project = ready_version.project
    project.decision = "pending"
    project.save()
    page = client_for(team.editor).get(f"/models/{ready_version.pk}/").content.decode()
    assert 'id="deploy-button" disabled' in page
    r = client_for(team.editor).post(f"/models/{ready_version.pk}/deploy/", {"name": "loans"})
    assert r.status_code == 400 and "does not pass the promotion gate" in r.content.decode()
    assert 'id="deploy-error"' in r.content.decode()
    # an owner may, with a justification long enough (refused under its field otherwise)
    owner = client_for(team.owner)
    r = owner.post(f"/models/{ready_version.pk}/deploy/", {"name": "loans", "justification": "short"})
    assert r.status_code == 400 and "at least 20 characters" in r.content.decode()
    assert not Deployment.objects.exists()
    r = owner.post(
        f"/models/{ready_version.pk}/deploy/",
        {"name": "loans", "justification": "A pilot for one branch, decided in the steering meeting."},
    )
    assert r.status_code == 302 and Deployment.objects.get().gate_override["by"] == team.owner.username


def test_api_key_reads_as_its_name(deployment, team):
    from deployments.serving.services import api_key_create

    key, _ = api_key_create(deployment=deployment, actor=team.owner, name="loan-app")
    assert str(key) == f"key “loan-app” ({key.prefix}…)"
