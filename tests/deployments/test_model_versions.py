"""One function creates model versions: numbered under the project's lock (a registration and a
retrain at once take consecutive numbers, never an IntegrityError), announced, audited, and
prepared by a job (input schema, drift reference) before they can serve."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from deployments.models import ModelVersion
from deployments.registry.services import model_version_prepare_run, model_version_register
from jobs.models import Job
from projects.models import AuditEvent
from tests.conftest import wait_for_job
from tests.deployments.conftest import make_evaluated_run


@pytest.mark.django_db(transaction=True)
def test_two_registrations_at_once_take_consecutive_numbers(team, go_project):
    """Both threads reach the numbering together (a barrier); on PostgreSQL, without the project
    lock both would read the same maximum and the second INSERT would break the unique
    (project, version) constraint."""
    runs = [make_evaluated_run(go_project, team.owner, seed=s) for s in (1, 2)]
    barrier = threading.Barrier(2)
    made: list[int] = []
    errors: list[BaseException] = []

    def register(run) -> None:
        try:
            barrier.wait(timeout=10)
            made.append(model_version_register(run=run, actor=team.owner).version)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(made) == [1, 2]
    assert AuditEvent.objects.filter(action="model.registered").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_version_serves_once_its_preparation_job_has_built_schema_and_reference(team, api, go_project, worker):
    go_project.webhook_url = "http://127.0.0.1:9/hook"  # refused at delivery (loopback): no network needed
    go_project.save()
    run = make_evaluated_run(go_project, team.owner)
    registered = api("editor").post(f"/api/v1/runs/{run.pk}/register/")
    assert registered.status_code == 202 and registered.json()["reference_status"] == "pending"
    version_id = registered.json()["id"]
    webhook = Job.objects.get(kind="webhook.deliver")
    assert (
        webhook.params["event"] == "model.registered" and webhook.params["payload"]["model_version"]["id"] == version_id
    )
    prepare = Job.objects.get(kind="model_version.prepare", target_id=version_id)
    assert wait_for_job(prepare.pk).status == "succeeded"
    version = ModelVersion.objects.get(pk=version_id)
    assert version.reference_status == "ready" and {f["name"] for f in version.input_schema} >= {"age", "color"}
    assert version.reference_stats["features"]["age"]["type"] == "numeric" and version.reference_key
    assert any(line.startswith("Example range") for line in version.model_card["limitations"])
    created = api("editor").post(
        "/api/v1/deployments/",
        {"project": go_project.pk, "name": "loans", "model_version": version_id},
        format="json",
    )
    assert created.status_code == 201, created.json()


@pytest.mark.django_db
def test_a_version_still_being_prepared_cannot_be_deployed_even_by_an_owner(team, api, go_project):
    run = make_evaluated_run(go_project, team.owner)
    version = model_version_register(run=run, actor=team.owner)  # its job is queued, not run
    gate = api("viewer").get(f"/api/v1/models/{version.pk}/gate/").json()
    assert gate["passed"] is False and "being prepared" in gate["reasons"][0]
    body = {
        "project": go_project.pk,
        "name": "loans",
        "model_version": version.pk,
        "justification": "An owner may override the gate, not the preparation.",
    }
    refused = api("owner").post("/api/v1/deployments/", body, format="json")
    assert refused.status_code == 409 and "model_version" in refused.json()["errors"]
    assert not go_project.deployments.exists()


@pytest.mark.django_db
def test_a_failed_preparation_is_recorded_and_said(team, api, go_project):
    run = make_evaluated_run(go_project, team.owner)
    version = model_version_register(run=run, actor=team.owner)
    with pytest.raises(Exception, match="missing"):
        model_version_prepare_run(model_version_id=version.pk, features=["age", "no_such_column"])
    version.refresh_from_db()
    assert version.reference_status == "failed" and "no_such_column" in version.reference_error
    gate = api("viewer").get(f"/api/v1/models/{version.pk}/gate/").json()
    assert "could not be prepared" in gate["reasons"][0]
    # A later attempt that succeeds (the job retried) makes it ready.
    model_version_prepare_run(model_version_id=version.pk, features=run.experiment.test_evaluation["feature_columns"])
    version.refresh_from_db()
    assert version.reference_status == "ready" and version.reference_error == ""
