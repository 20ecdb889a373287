from __future__ import annotations

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from deployments.models import Prediction, PredictionErrorCount
from deployments.rollout.services import deployment_create, deployment_set_status
from deployments.serving.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

GOOD = {"age": 40, "income": 61000.5, "score": 0.7, "color": "red", "member": True}


def key_client(deployment, user, **kwargs) -> tuple[APIClient, object]:
    api_key, clear = api_key_create(deployment=deployment, actor=user, name="app", **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    return client, api_key


def post(client, deployment, body):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(f"/api/v1/deployments/{deployment.pk}/predict/", raw, content_type="application/json")


def test_predict_with_an_api_key_returns_and_logs_predictions(team, deployment):
    client, api_key = key_client(deployment, team.editor)
    r = post(client, deployment, {"instances": [GOOD, {**GOOD, "color": "blue", "income": 20000}]})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == 1
    assert len(body["predictions"]) == 2
    for p in body["predictions"]:
        assert p["prediction"] in ("yes", "no")
        assert p["status"] == "accepted"
        assert set(p["probabilities"]) == {"no", "yes"}
        assert p["confidence"] == pytest.approx(max(p["probabilities"].values()), abs=1e-6)
        assert p["probabilities"][p["prediction"]] == pytest.approx(p["confidence"], abs=1e-6)
    rows = Prediction.objects.filter(deployment=deployment).order_by("created_at", "id")
    assert rows.count() == 2
    logged = {str(r.id): r for r in rows}
    first = logged[body["predictions"][0]["id"]]
    assert first.inputs == GOOD and first.caller == f"key:{api_key.pk}" and first.source == "api"
    assert first.latency_ms is not None and first.latency_ms > 0
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_predict_roles_for_user_tokens(team, api, deployment):
    body = {"instances": [GOOD]}
    assert post(api("outsider"), deployment, body).status_code == 404
    assert post(api("viewer"), deployment, body).status_code == 403
    assert post(api("reviewer"), deployment, body).status_code == 403
    assert post(api("editor"), deployment, body).status_code == 200
    assert post(APIClient(), deployment, body).status_code in (401, 403)
    assert Prediction.objects.filter(deployment=deployment).count() == 1
    assert Prediction.objects.get().caller == f"user:{team.editor.pk}"


def test_a_key_works_only_on_its_own_deployment(team, registered, deployment):
    other = deployment_create(
        project=team.project, actor=team.editor, name="other", model_version=deployment.model_version
    )
    client, _ = key_client(other, team.editor)
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 404
    # and a key of another project's deployment is no better
    assert post(client, other, {"instances": [GOOD]}).status_code == 200


def test_a_revoked_or_made_up_key_is_refused(team, deployment):
    client, api_key = key_client(deployment, team.editor)
    api_key_revoke(api_key=api_key, actor=team.editor)
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 401
    bogus = APIClient()
    bogus.credentials(HTTP_AUTHORIZATION="Api-Key mlpk_not-a-real-key")
    assert post(bogus, deployment, {"instances": [GOOD]}).status_code == 401
    assert not Prediction.objects.exists()


@pytest.mark.parametrize(
    ("instance", "field", "words"),
    [
        ({k: v for k, v in GOOD.items() if k != "income"}, "income", "missing"),
        ({**GOOD, "age": "forty"}, "age", "number"),
        ({**GOOD, "color": "purple"}, "color", "unknown category"),
        ({**GOOD, "color": 3}, "color", "string"),
        ({**GOOD, "member": "maybe"}, "member", "true or false"),
        ({**GOOD, "nickname": "bob"}, "nickname", "does not use"),
        ({**GOOD, "age": None}, "age", "missing values"),
    ],
)
def test_predict_rejects_bad_instances_and_logs_nothing(team, deployment, instance, field, words):
    deployment.allow_missing = False
    deployment.save()
    client, _ = key_client(deployment, team.editor)
    r = post(client, deployment, {"instances": [GOOD, instance]})
    assert r.status_code == 400, r.content
    errors = r.json()["errors"]
    assert list(errors) == ["instances[1]"]
    assert words in errors["instances[1]"][field][0]
    assert not Prediction.objects.exists()
    assert PredictionErrorCount.objects.get(deployment=deployment, kind="validation").count == 1


def test_unknown_category_allowed_by_policy(team, deployment):
    deployment.unknown_category_policy = "allow"
    deployment.save()
    client, _ = key_client(deployment, team.editor)
    assert post(client, deployment, {"instances": [{**GOOD, "color": "purple"}]}).status_code == 200


def test_null_allowed_when_the_deployment_allows_missing_values(team, deployment):
    client, _ = key_client(deployment, team.editor)
    r = post(client, deployment, {"instances": [{**GOOD, "income": None}]})
    assert r.status_code == 200, r.content


@pytest.mark.parametrize(
    "raw",
    [
        '{"instances": [{"age": NaN, "income": 1, "score": 0.1, "color": "red", "member": true}]}',
        "not json",
        '{"rows": []}',
        '{"instances": []}',
        '{"instances": {"age": 1}}',
        '{"instances": [1]}',
        '{"instances": [], "extra": 1}',
    ],
)
def test_predict_rejects_malformed_bodies(team, deployment, raw):
    client, _ = key_client(deployment, team.editor)
    r = post(client, deployment, raw)
    assert r.status_code == 400, r.content
    assert r.json()["detail"]
    assert not Prediction.objects.exists()


def test_too_many_instances_and_too_large_bodies(team, deployment):
    deployment.max_instances = 3
    deployment.save()
    client, _ = key_client(deployment, team.editor)
    assert post(client, deployment, {"instances": [GOOD] * 4}).status_code == 413
    assert post(client, deployment, {"instances": [GOOD] * 3}).status_code == 200
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000):
        r = post(client, deployment, {"instances": [GOOD] * 30})
    assert r.status_code == 413
    assert Prediction.objects.count() == 3


def test_paused_deployment_answers_503(team, deployment):
    client, _ = key_client(deployment, team.editor)
    deployment_set_status(deployment=deployment, actor=team.editor, status="paused")
    r = post(client, deployment, {"instances": [GOOD]})
    assert r.status_code == 503
    assert "paused" in r.json()["detail"]
    deployment_set_status(deployment=deployment, actor=team.editor, status="active")
    assert post(client, deployment, {"instances": [GOOD]}).status_code == 200


def test_rate_limit_per_key(team, deployment):
    client, api_key = key_client(deployment, team.editor, rate_per_minute=2)
    import redis
    from django.conf import settings

    r0 = redis.Redis.from_url(settings.REDIS_URL)
    for k in r0.scan_iter(f"{{mlp}}:rate:{api_key.pk}:*"):
        r0.delete(k)
    codes = [post(client, deployment, {"instances": [GOOD]}).status_code for _ in range(3)]
    # the two first pass unless the minute turned over between them; the budget then restarts
    assert codes.count(429) <= 1
    if codes[-1] == 429:
        last = post(client, deployment, {"instances": [GOOD]})
        assert last.status_code == 429 and 1 <= int(last["Retry-After"]) <= 60


def test_regression_predictions_have_no_confidence(team, go_project):
    from tests.deployments.conftest import make_evaluated_run, register_prepared

    p = go_project
    p.task_type, p.success_metric, p.baseline_score, p.success_threshold = "regression", "rmse", 500, 300
    p.save()
    v = register_prepared(make_evaluated_run(p, team.owner, task="regression", f1=250, ci=(200, 280)), team.owner)
    d = deployment_create(project=p, actor=team.editor, name="amounts", model_version=v)
    client, _ = key_client(d, team.editor)
    r = post(client, d, {"instances": [GOOD]})
    assert r.status_code == 200, r.content
    p0 = r.json()["predictions"][0]
    assert isinstance(p0["prediction"], float) and p0["confidence"] is None and p0["probabilities"] is None


def test_a_key_of_another_projects_deployment_gets_404(team, deployment):
    from tests.deployments.conftest import make_evaluated_run, register_prepared

    other = team.other_project
    other.decision = "go"
    other.save()
    theirs = deployment_create(
        project=other,
        actor=team.outsider,
        name="theirs",
        model_version=register_prepared(make_evaluated_run(other, team.outsider, seed=3), team.outsider),
    )
    their_client, _ = key_client(theirs, team.outsider)
    assert post(their_client, deployment, {"instances": [GOOD]}).status_code == 404
    my_client, _ = key_client(deployment, team.editor)
    assert post(my_client, theirs, {"instances": [GOOD]}).status_code == 404
    assert post(their_client, theirs, {"instances": [GOOD]}).status_code == 200
    assert not Prediction.objects.filter(deployment=deployment).exists()
