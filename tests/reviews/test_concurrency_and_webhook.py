"""Real concurrency (two clients at once on PostgreSQL) and the hold-mode webhook through a real
Celery worker to a real HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connections

from deployments.models import Prediction, ReviewItem
from jobs.models import Job
from jobs.webhooks import sign
from projects.models import AuditEvent
from tests.conftest import api_client_for, wait_for_job
from tests.reviews.conftest import uncertain_rows

URL = "/api/v1/reviews/"


def _race(clients_and_calls):
    """Fire each (client, path, body) at the same instant from its own thread and DB connection."""
    barrier = threading.Barrier(len(clients_and_calls))
    results: list = [None] * len(clients_and_calls)

    def run(i, client, path, body):
        try:
            barrier.wait()
            results[i] = client.post(path, body, format="json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(clients_and_calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_once_exactly_one_wins(team, loan):
    _, items = loan.predict(uncertain_rows(loan, 8))
    rita, eddie = api_client_for(team.reviewer), api_client_for(team.editor)
    for n, item in enumerate(items):
        # Alternate the kinds of collisions: approve/approve and approve/override.
        second = (
            ("override", {"label": "reject" if item.model_label == "approve" else "approve"})
            if n % 2
            else (
                "approve",
                {},
            )
        )
        results = _race([(rita, f"{URL}{item.pk}/approve/", {}), (eddie, f"{URL}{item.pk}/{second[0]}/", second[1])])
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 409], [(r.status_code, r.data) for r in results]
        winner = next(r for r in results if r.status_code == 200)
        item.refresh_from_db()
        assert item.decided_by.username == winner.data["decided_by"]
        assert AuditEvent.objects.filter(object_id=str(item.pk), action__startswith="review.").count() == 1
        pred = Prediction.objects.get(pk=item.prediction_id)
        assert pred.final_prediction == item.final_label


@pytest.mark.django_db(transaction=True)
def test_decisions_on_stale_reads_cannot_both_win(team, loan):
    """Both reviewers loaded the item while it was pending (the dangerous interleaving): each
    thread reads the row first, then both decide at the same instant."""
    from deployments.reviews.services import review_decide
    from mlplatform.errors import Conflict

    _, items = loan.predict(uncertain_rows(loan, 6))
    for item in items:
        barrier = threading.Barrier(2)
        outcomes: list = [None, None]

        def run(i, user, action, label, item=item, barrier=barrier, outcomes=outcomes):
            try:
                mine = ReviewItem.objects.select_related("prediction__model_version", "project", "deployment").get(
                    pk=item.pk
                )
                assert mine.status == "pending"
                barrier.wait()
                try:
                    review_decide(item=mine, actor=user, action=action, label=label)
                    outcomes[i] = "won"
                except Conflict:
                    outcomes[i] = "conflict"
            finally:
                connections.close_all()

        threads = [
            threading.Thread(target=run, args=(0, team.reviewer, "approve", None)),
            threading.Thread(target=run, args=(1, team.editor, "override", "reject")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["conflict", "won"], outcomes
        assert AuditEvent.objects.filter(object_id=str(item.pk), action__startswith="review.").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_claiming_at_once_one_gets_the_item(team, loan):
    _, items = loan.predict(uncertain_rows(loan, 5))
    rita, eddie = api_client_for(team.reviewer), api_client_for(team.editor)
    for item in items:
        results = _race([(rita, f"{URL}{item.pk}/claim/", {}), (eddie, f"{URL}{item.pk}/claim/", {})])
        assert sorted(r.status_code for r in results) == [200, 409]
        item.refresh_from_db()
        assert item.claimed_by_id in (team.reviewer.pk, team.editor.pk)


class Receiver:
    """A tiny webhook receiver on 127.0.0.1: fails the first `fail_first` deliveries."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = 500 if len(receiver.received) <= receiver.fail_first else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_hold_mode_decision_reaches_the_caller_signed_and_retried(team, loan, worker, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver(fail_first=1)
    try:
        loan.deployment.review_webhook_url = receiver.url
        loan.deployment.save()
        type(team.project).objects.filter(pk=team.project.pk).update(webhook_secret="s3cret-for-callers")
        preds, items = loan.predict(uncertain_rows(loan, 2))
        assert all(p.status == "pending_review" for p in preds)
        rita = api_client_for(team.reviewer)
        r = rita.post(f"{URL}{items[0].pk}/override/", {"label": "reject"}, format="json")
        assert r.status_code == 200, r.data
        job = Job.objects.get(kind="webhook.deliver")
        job = wait_for_job(job.pk, timeout=60)
        assert job.status == "succeeded", job.error
        assert job.attempts == 2  # the receiver's first answer was a 500: retried
        last = receiver.received[-1]
        body = json.loads(last["body"])
        assert body["review_id"] == items[0].pk
        assert body["prediction_id"] == str(preds[0].id)
        assert body["final_label"] == "reject" and body["final"] is True and body["status"] == "overridden"
        assert last["headers"]["X-Mlplatform-Event"] == "review.decided"
        expected = sign("s3cret-for-callers", last["headers"]["X-Mlplatform-Timestamp"], last["body"])
        assert last["headers"]["X-Mlplatform-Signature"] == expected
        # Escalation is not final: nothing is sent to the caller.
        rita.post(f"{URL}{items[1].pk}/escalate/", {}, format="json")
        time.sleep(0.5)
        assert Job.objects.filter(kind="webhook.deliver").count() == 1
    finally:
        receiver.close()


def test_flag_mode_sends_no_webhook(team, loan, worker, settings):
    loan.deployment.review_mode = "flag"
    loan.deployment.review_webhook_url = "http://127.0.0.1:9/hook"
    loan.deployment.save()
    _, items = loan.predict(uncertain_rows(loan, 1))
    r = api_client_for(team.reviewer).post(f"{URL}{items[0].pk}/approve/", {}, format="json")
    assert r.status_code == 200
    assert not Job.objects.filter(kind="webhook.deliver").exists()
    assert ReviewItem.objects.get(pk=items[0].pk).status == "approved"
