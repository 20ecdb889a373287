"""The prediction log's Redis hand-off and the per-process API-key cache, against real Redis and PostgreSQL.

The suite's default is to write predictions in the request (PREDICTION_LOG_QUEUE=0 in the
Makefile's test environment: most tests read the rows right after the call, inside a test
transaction a drainer's connection could not see). Here the production default is on, with
committed data (`transactional_db`), the process's real drainer thread and a real server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis
import requests
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from deployments.models import Deployment, Prediction
from deployments.prediction_store import prediction_inputs
from deployments.rollout import services as rollout_services
from deployments.rollout.services import deployment_promote, deployment_rollback
from deployments.serving import keys, prediction_log
from deployments.serving.services import api_key_create, api_key_revoke
from mlplatform import redis as platform_redis
from projects.models import AuditEvent

GOOD = {"age": 40, "income": 61000.5, "score": 0.7, "color": "red", "member": True}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue_on():
    client = platform_redis.client()
    for key in client.scan_iter(match="{mlp}:predlog*"):
        client.delete(key)
    with override_settings(PREDICTION_LOG_QUEUE=True):
        yield client
    prediction_log.flush()


def key_client(deployment, user) -> tuple[APIClient, object, str]:
    api_key, clear = api_key_create(deployment=deployment, actor=user, name="app")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    return client, api_key, clear


def predict(client, deployment, instances):
    return client.post(f"/api/v1/deployments/{deployment.pk}/predict/", {"instances": instances}, format="json")


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def encoded_row(deployment, **overrides) -> str:
    row = {
        "id": str(uuid.uuid4()),
        "project_id": deployment.project_id,
        "deployment_id": deployment.pk,
        "model_version_id": deployment.model_version_id,
        "source": "api",
        "inputs": GOOD,
        "prediction": "yes",
        "confidence": 0.8,
        "probabilities": {"no": 0.2, "yes": 0.8},
        "status": "accepted",
        "caller": "key:1",
        "latency_ms": 3.5,
        "created_at": "2026-12-01T10:00:00+00:00",
    } | overrides
    return prediction_log.encode(row)


def test_api_rows_travel_through_the_queue_and_arrive_whole(team, deployment, queue_on):
    client, api_key, _ = key_client(deployment, team.editor)
    answers = []
    for k in range(3):
        r = predict(client, deployment, [GOOD, {**GOOD, "income": 20000.0 + k}])
        assert r.status_code == 200, r.content
        answers += r.json()["predictions"]
    prediction_log.flush()
    rows = {str(p.id): p for p in Prediction.objects.filter(deployment=deployment)}
    assert set(rows) == {a["id"] for a in answers}
    for a in answers:
        row = rows[a["id"]]
        assert row.prediction == a["prediction"] and row.status == a["status"] == "accepted"
        assert row.confidence == pytest.approx(a["confidence"]) and row.probabilities == a["probabilities"]
        assert row.source == "api" and row.caller == f"key:{api_key.pk}" and row.latency_ms > 0
        assert row.actual is None and row.actual_source == "" and row.created_at is not None
    # The features are in the columnar store's segment, not in PostgreSQL's JSON column.
    assert rows[answers[1]["id"]].inputs is None
    assert prediction_inputs(rows[answers[1]["id"]]) == {**GOOD, "income": 20000.0}
    assert prediction_log.pending() == 0


def test_the_drainer_thread_writes_them_without_being_asked(team, deployment, queue_on):
    client, _, _ = key_client(deployment, team.editor)
    r = predict(client, deployment, [GOOD])
    assert r.status_code == 200
    pid = r.json()["predictions"][0]["id"]
    assert wait_for(lambda: Prediction.objects.filter(pk=pid).exists(), timeout=5)


def test_feedback_right_after_the_answer_finds_its_prediction(team, deployment, queue_on):
    client, _, _ = key_client(deployment, team.editor)
    pid = predict(client, deployment, [GOOD]).json()["predictions"][0]["id"]
    r = client.post(
        f"/api/v1/deployments/{deployment.pk}/feedback/", {"prediction_id": pid, "actual": "no"}, format="json"
    )
    assert r.status_code == 200, r.content
    assert Prediction.objects.get(pk=pid).actual == "no"
    event = AuditEvent.objects.get(action="deployment.feedback")
    assert event.actor is None and event.actor_label.startswith("key:")


def test_a_dead_drainers_claim_is_inserted_by_another_once(deployment, queue_on):
    rows = [encoded_row(deployment) for _ in range(5)]
    claim = f"{prediction_log.CLAIM_PREFIX}dead-drainer"
    queue_on.rpush(claim, *rows)
    queue_on.zadd(prediction_log.CLAIMS, {claim: time.time() - 3600})
    assert prediction_log.pending() == 5
    assert prediction_log.recover() == 5
    assert Prediction.objects.filter(deployment=deployment).count() == 5
    assert prediction_log.pending() == 0 and not queue_on.exists(claim)
    # The drainer was only slow, and commits the same batch after all: still five rows.
    assert prediction_log._insert(rows) == 0
    assert Prediction.objects.filter(deployment=deployment).count() == 5


def test_a_fresh_claim_is_left_to_its_drainer(deployment, queue_on):
    claim = f"{prediction_log.CLAIM_PREFIX}busy-drainer"
    queue_on.rpush(claim, encoded_row(deployment))
    queue_on.zadd(prediction_log.CLAIMS, {claim: time.time()})
    assert prediction_log.recover() == 0
    assert queue_on.exists(claim)
    queue_on.delete(claim)
    queue_on.zrem(prediction_log.CLAIMS, claim)


def test_one_refused_row_does_not_hold_back_its_batch(deployment, queue_on):
    good = [encoded_row(deployment) for _ in range(6)]
    orphan = encoded_row(deployment, deployment_id=deployment.pk + 10_000)  # a deployment deleted meanwhile
    bad_json = encoded_row(deployment, created_at="not a time")
    assert prediction_log._insert([*good[:3], orphan, *good[3:], bad_json]) == 6
    assert Prediction.objects.filter(deployment=deployment).count() == 6


def test_values_postgresql_cannot_store_never_enter_the_queue(deployment):
    assert encoded_row(deployment, inputs={**GOOD, "color": "a\x00b"}) is None
    assert encoded_row(deployment, confidence=float("nan")) is None


def test_without_redis_the_request_writes_its_own_rows(team, deployment, queue_on):
    client, _, _ = key_client(deployment, team.editor)
    nowhere = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens there
    with platform_redis.use(nowhere):  # the process's one client: the key cache and the log alike
        r = predict(client, deployment, [GOOD])
    assert r.status_code == 200
    assert Prediction.objects.filter(pk=r.json()["predictions"][0]["id"]).exists()  # no flush needed


def test_reviewed_calls_are_written_in_the_request_to_name_their_review_items(team, deployment, queue_on):
    deployment.review_mode = "hold"
    deployment.review_threshold = 1.0  # every prediction is below: all go to review
    deployment.save()
    client, _, _ = key_client(deployment, team.editor)
    p = predict(client, deployment, [GOOD]).json()["predictions"][0]
    assert p["status"] == "pending_review" and p["review_id"]
    assert Prediction.objects.get(pk=p["id"]).review.pk == p["review_id"]


def test_no_prediction_is_lost_under_concurrent_load(team, deployment, queue_on, live_server):
    _, _, clear = key_client(deployment, team.editor)
    url = f"{live_server.url}/api/v1/deployments/{deployment.pk}/predict/"
    ok: list[str] = []
    failures: list[int] = []

    def caller() -> None:
        with requests.Session() as s:
            for k in range(40):
                r = s.post(
                    url, json={"instances": [{**GOOD, "age": 20 + k}]}, headers={"Authorization": f"Api-Key {clear}"}
                )
                if r.status_code == 200:
                    ok.append(r.json()["predictions"][0]["id"])
                else:
                    failures.append(r.status_code)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(ok) == 320
    prediction_log.flush()
    logged = set(Prediction.objects.filter(deployment=deployment).values_list("id", flat=True))
    assert {uuid.UUID(i) for i in ok} == logged


# --- the API-key cache ---------------------------------------------------------------------------------


def test_changes_reach_a_cached_key_on_its_next_call(team, registered, deployment):
    client, api_key, _ = key_client(deployment, team.editor)
    assert predict(client, deployment, [GOOD]).status_code == 200  # cached from here on
    rollout_services.deployment_set_status(deployment=deployment, actor=team.editor, status="paused")
    assert predict(client, deployment, [GOOD]).status_code == 503
    rollout_services.deployment_set_status(deployment=deployment, actor=team.editor, status="active")
    assert predict(client, deployment, [GOOD]).json()["model_version"] == 1
    v2 = registered(seed=1)
    deployment_promote(deployment=deployment, actor=team.editor, model_version=v2, reason="better")
    assert predict(client, deployment, [GOOD]).json()["model_version"] == 2
    deployment_rollback(deployment=Deployment.objects.get(pk=deployment.pk), actor=team.editor)
    assert predict(client, deployment, [GOOD]).json()["model_version"] == 1
    api_key_revoke(api_key=api_key, actor=team.editor)
    assert predict(client, deployment, [GOOD]).status_code == 401


def test_another_process_change_is_seen_through_the_redis_generation(team, deployment):
    client, _, _ = key_client(deployment, team.editor)
    assert predict(client, deployment, [GOOD]).status_code == 200
    # Another web process pauses the deployment: its database write, then its generation bump.
    Deployment.objects.filter(pk=deployment.pk).update(status="paused")  # no signal in this process
    assert predict(client, deployment, [GOOD]).status_code == 200  # this process still trusts its cache
    redis.Redis.from_url(settings.REDIS_URL).set(keys.SERVING_GENERATION, "bumped-elsewhere")
    r = predict(client, deployment, [GOOD])
    assert r.status_code == 503, r.content


def test_a_refusal_made_on_stale_facts_is_reconsidered(team, deployment):
    """Paused, cached as paused, then resumed by another process: the next call is answered."""
    client, _, _ = key_client(deployment, team.editor)
    generation = redis.Redis.from_url(settings.REDIS_URL)
    Deployment.objects.filter(pk=deployment.pk).update(status="paused")
    generation.set(keys.SERVING_GENERATION, "paused-elsewhere")
    assert predict(client, deployment, [GOOD]).status_code == 503  # cached: paused
    Deployment.objects.filter(pk=deployment.pk).update(status="active")
    generation.set(keys.SERVING_GENERATION, "resumed-elsewhere")
    r = predict(client, deployment, [GOOD])
    assert r.status_code == 200, r.content


def test_feedback_with_a_key_counts_against_its_rate_limit(team, deployment):
    _, clear = api_key_create(deployment=deployment, actor=team.editor, name="app", rate_per_minute=2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    assert predict(client, deployment, [GOOD]).status_code == 200
    pid = Prediction.objects.get(deployment=deployment).pk
    body = json.dumps({"prediction_id": str(pid), "actual": "no"})
    url = f"/api/v1/deployments/{deployment.pk}/feedback/"
    assert client.post(url, body, content_type="application/json").status_code == 200
    r = client.post(url, body, content_type="application/json")
    assert r.status_code == 429 and r.json()["code"] == "throttled" and int(r["Retry-After"]) >= 1


def test_the_beat_task_recovers_what_no_web_process_drained(deployment, queue_on, worker):
    from deployments.tasks import drain_prediction_log

    claim = f"{prediction_log.CLAIM_PREFIX}web-process-gone"
    queue_on.rpush(claim, *[encoded_row(deployment) for _ in range(3)])
    queue_on.zadd(prediction_log.CLAIMS, {claim: time.time() - 3600})
    drain_prediction_log.delay()  # what beat sends every 30 s, run by a real worker
    assert wait_for(lambda: Prediction.objects.filter(deployment=deployment).count() == 3)
    assert prediction_log.pending() == 0


def test_rows_queued_then_lost_by_a_redis_restart_are_written_by_their_process(deployment, queue_on):
    rows = [encoded_row(deployment) for _ in range(4)]
    prediction_log.pushed(rows)  # queued by this process... and then gone with Redis' data
    prediction_log._run_id = "the run before the restart"
    prediction_log._check_restart()  # what the drainer does each round (it may get there first)
    assert wait_for(lambda: Prediction.objects.filter(deployment=deployment).count() == 4)


def test_a_process_forgets_its_copies_once_the_queue_was_drained(deployment, queue_on):
    rows = [encoded_row(deployment) for _ in range(3)]
    assert prediction_log.push(rows)
    assert any(kept is rows for _, kept in prediction_log._retained)  # until a drainer empties the queue
    assert wait_for(lambda: not any(kept is rows for _, kept in prediction_log._retained), timeout=5)
    assert Prediction.objects.filter(deployment=deployment).count() == 3
