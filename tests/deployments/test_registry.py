from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from deployments.ml import scoring
from deployments.models import ModelVersion
from deployments.registry.selectors import gate_check
from deployments.serving.selectors import model_for
from mlplatform.artifacts import TamperedModelFile
from projects.models import AuditEvent
from tests.deployments.conftest import make_evaluated_run, register_prepared

pytestmark = pytest.mark.django_db


def test_register_records_schema_lineage_metrics_and_hash(team, registered):
    v = registered()
    assert v.version == 1
    schema = {f["name"]: f for f in v.input_schema}
    assert schema["age"]["type"] == "numeric" and 18 <= schema["age"]["min"] <= schema["age"]["max"] <= 79
    assert schema["color"]["type"] == "categorical"
    assert schema["color"]["categories"] == ["blue", "green", "red"]
    assert schema["member"]["type"] == "boolean"
    assert v.classes == ["no", "yes"]
    assert v.metrics["test"]["f1"]["ci_low"] == 0.8
    assert v.lineage["run"]["id"] == v.run_id and v.lineage["dataset_version"]["number"] == 1
    assert v.lineage["registered_by"] == team.owner.username
    assert len(v.sha256) == 64 and v.size_bytes > 0 and v.reference_key
    assert v.model_card["limitations"] and v.model_card["problem"]["objective"]
    assert AuditEvent.objects.filter(action="model.registered", object_id=str(v.pk)).exists()
    second = registered(seed=1)
    assert second.version == 2


def test_register_api_roles_and_errors(team, api, go_project):
    run = make_evaluated_run(go_project, team.owner)
    assert api("outsider").post(f"/api/v1/runs/{run.pk}/register/").status_code == 404
    assert api("viewer").post(f"/api/v1/runs/{run.pk}/register/").status_code == 403
    assert api("reviewer").post(f"/api/v1/runs/{run.pk}/register/").status_code == 403
    r = api("editor").post(f"/api/v1/runs/{run.pk}/register/")
    assert r.status_code == 202, r.content
    assert r["Location"] == f"/api/v1/jobs/{r.json()['job_id']}/"  # the preparation job to wait on
    # The request reads no training rows: a job builds the schema and the drift reference.
    assert r.json()["version"] == 1 and r.json()["reference_status"] == "pending" and r.json()["input_schema"] == []
    assert r.json()["positive_class"] == "yes"
    again = api("editor").post(f"/api/v1/runs/{run.pk}/register/")
    assert again.status_code == 409
    assert ModelVersion.objects.count() == 1


def test_register_refuses_a_run_that_was_not_evaluated(team, api, go_project):
    run = make_evaluated_run(go_project, team.owner)
    exp = run.experiment
    exp.evaluated_run = None
    exp.save()
    r = api("editor").post(f"/api/v1/runs/{run.pk}/register/")
    assert r.status_code == 400 and "run" in r.json()["errors"]
    assert not ModelVersion.objects.exists()


def test_tampered_model_file_is_refused_before_loading(team, registered):
    v = registered()
    default_storage.delete(v.artifact_key)
    default_storage.save(v.artifact_key, ContentFile(b"not the registered bytes"))
    scoring.model_cache_clear()
    with pytest.raises(TamperedModelFile):
        model_for(v)


def test_models_list_is_scoped_and_download_has_the_hash(team, api, registered):
    v = registered()
    assert api("outsider").get("/api/v1/models/").json()["results"] == []
    assert api("outsider").get(f"/api/v1/models/{v.pk}/").status_code == 404
    rows = api("viewer").get(f"/api/v1/models/?project={team.project.pk}").json()["results"]
    assert [r["version"] for r in rows] == [1]
    d = api("viewer").get(f"/api/v1/models/{v.pk}/download/")
    assert d.status_code == 200 and d["X-Content-SHA256"] == v.sha256
    import hashlib

    assert hashlib.sha256(b"".join(d.streaming_content)).hexdigest() == v.sha256
    usage = api("viewer").get(f"/api/v1/models/{v.pk}/usage/").json()
    assert "skops" in usage["snippet"] and v.sha256 in usage["snippet"]
    assert api("outsider").get(f"/api/v1/models/{v.pk}/download/").status_code == 404


@pytest.mark.parametrize(
    ("strictness", "baseline", "threshold", "decision", "passed"),
    [
        ("point", 0.6, 0.7, "go", True),
        ("lower_bound", 0.6, 0.7, "go", True),  # ci_low 0.8
        ("lower_bound", 0.6, 0.82, "go", False),  # point 0.85 passes, the lower bound 0.8 does not
        ("point", 0.6, 0.82, "go", True),
        ("point", 0.85, 0.7, "go", False),  # equal to the baseline does not beat it
        ("point", 0.6, 0.7, "pending", False),
        ("point", 0.6, 0.9, "go", False),
    ],
)
def test_gate(team, registered, strictness, baseline, threshold, decision, passed):
    v = registered()
    p = team.project
    p.gate_strictness, p.baseline_score, p.success_threshold, p.decision = strictness, baseline, threshold, decision
    p.save()
    result = gate_check(v, p)
    assert result.passed is passed, result.reasons
    assert bool(result.reasons) is (not passed)


def test_gate_for_an_error_metric_uses_the_high_end(team, go_project):
    p = go_project
    p.task_type, p.success_metric, p.baseline_score, p.success_threshold = "regression", "rmse", 500, 300
    p.gate_strictness = "lower_bound"
    p.save()
    run = make_evaluated_run(p, team.owner, task="regression", f1=250, ci=(200, 320))
    v = register_prepared(run, team.owner)
    assert not gate_check(v, p).passed  # 320 > 300
    p.gate_strictness = "point"
    p.save()
    assert gate_check(v, p).passed
