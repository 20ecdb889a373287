from __future__ import annotations

import pytest

from deployments.models import Prediction, ReviewItem
from projects.models import AuditEvent
from tests.reviews.conftest import uncertain_rows

pytestmark = pytest.mark.django_db

URL = "/api/v1/reviews/"


@pytest.fixture
def queue(loan):
    _preds, items = loan.predict(uncertain_rows(loan, 6))
    return items


def test_queue_lists_pending_items_oldest_first(api, team, loan, queue):
    r = api("reviewer").get(URL, {"project": team.project.pk, "status": "pending"})
    assert r.status_code == 200, r.data
    assert [row["id"] for row in r.data["results"]] == [i.pk for i in queue]
    row = r.data["results"][0]
    assert row["status"] == "pending" and row["final"] is False
    assert row["inputs"]["employment"] in ("salaried", "self_employed", "unemployed")
    assert set(row["probabilities"]) == {"approve", "reject"}


def test_queue_least_confident_first(api, team, queue):
    r = api("viewer").get(URL, {"project": team.project.pk, "order": "least_confident"})
    confs = [row["confidence"] for row in r.data["results"]]
    assert confs == sorted(confs)


def test_queue_rejects_unknown_order(api, team, queue):
    r = api("viewer").get(URL, {"order": "random"})
    assert r.status_code == 400 and "order" in r.data["errors"]


def test_outsider_sees_no_items_and_404_on_one(api, team, queue):
    r = api("outsider").get(URL)
    assert r.status_code == 200 and r.data["count"] == 0
    assert api("outsider").get(f"{URL}{queue[0].pk}/").status_code == 404
    assert api("outsider").post(f"{URL}{queue[0].pk}/approve/").status_code == 404
    assert api("outsider").post(f"{URL}{queue[0].pk}/override/", {"label": "reject"}).status_code == 404
    assert api("outsider").post(f"{URL}{queue[0].pk}/escalate/").status_code == 404
    assert api("outsider").post(f"{URL}{queue[0].pk}/claim/").status_code == 404
    assert ReviewItem.objects.filter(status="pending").count() == 6


@pytest.mark.parametrize("path", ["approve", "escalate", "claim"])
def test_viewer_can_read_but_not_decide(api, queue, path):
    item = queue[0]
    assert api("viewer").get(f"{URL}{item.pk}/").status_code == 200
    r = api("viewer").post(f"{URL}{item.pk}/{path}/")
    assert r.status_code == 403
    item.refresh_from_db()
    assert item.status == "pending" and item.claimed_by is None


def test_viewer_cannot_override_or_bulk_approve(api, queue):
    assert api("viewer").post(f"{URL}{queue[0].pk}/override/", {"label": "reject"}).status_code == 403
    r = api("viewer").post(f"{URL}bulk-approve/", {"ids": [queue[0].pk]})
    assert r.status_code == 403
    assert ReviewItem.objects.filter(status="pending").count() == 6


@pytest.mark.parametrize("role", ["reviewer", "editor", "owner"])
def test_reviewers_editors_owners_approve(api, team, queue, role):
    item = queue[0]
    r = api(role).post(f"{URL}{item.pk}/approve/", {"comment": "income verified"})
    assert r.status_code == 200, r.data
    assert r.data["status"] == "approved" and r.data["final"] is True
    assert r.data["final_label"] == item.model_label
    assert r.data["decided_by"] == team.user(role).username
    pred = Prediction.objects.get(pk=item.prediction_id)
    assert pred.status == "reviewed"
    assert pred.final_prediction == item.model_label
    assert pred.actual == item.model_label and pred.actual_source == "review" and pred.actual_at is not None


def test_override_sets_ground_truth_and_audits(api, team, queue):
    item = queue[0]
    other = "reject" if item.model_label == "approve" else "approve"
    r = api("reviewer").post(f"{URL}{item.pk}/override/", {"label": other, "comment": "debt hidden"})
    assert r.status_code == 200, r.data
    assert r.data["status"] == "overridden" and r.data["final_label"] == other
    pred = Prediction.objects.get(pk=item.prediction_id)
    assert pred.final_prediction == other and pred.actual == other
    event = AuditEvent.objects.get(action="review.overridden", object_id=str(item.pk))
    assert event.actor == team.reviewer
    assert event.data["model_said"] == item.model_label
    assert event.data["human_said"] == other
    assert event.data["waited_seconds"] >= 0
    assert event.data["comment"] == "debt hidden"


@pytest.mark.parametrize("body", [{}, {"label": ""}, {"label": "maybe"}, {"label": None}])
def test_override_validates_label_against_classes(api, queue, body):
    item = queue[0]
    r = api("reviewer").post(f"{URL}{item.pk}/override/", body, format="json")
    assert r.status_code == 400, r.data
    assert "label" in r.data["errors"]
    item.refresh_from_db()
    assert item.status == "pending"
    assert not AuditEvent.objects.filter(object_id=str(item.pk), action__startswith="review.").exists()


def test_comment_too_long_is_rejected(api, queue):
    r = api("reviewer").post(f"{URL}{queue[0].pk}/approve/", {"comment": "x" * 6000})
    assert r.status_code == 400 and "comment" in r.data["errors"]


def test_decided_item_cannot_be_decided_again(api, queue):
    item = queue[0]
    assert api("reviewer").post(f"{URL}{item.pk}/approve/").status_code == 200
    for path, body in (("approve", {}), ("override", {"label": "reject"}), ("escalate", {})):
        r = api("editor").post(f"{URL}{item.pk}/{path}/", body)
        assert r.status_code == 409, (path, r.data)
    item.refresh_from_db()
    assert item.status == "approved"
    assert AuditEvent.objects.filter(object_id=str(item.pk), action__startswith="review.").count() == 1


def test_escalated_item_only_owner_decides(api, team, queue):
    item = queue[0]
    r = api("reviewer").post(f"{URL}{item.pk}/escalate/", {"comment": "unusual income source"})
    assert r.status_code == 200 and r.data["status"] == "escalated" and r.data["final"] is False
    assert api("reviewer").post(f"{URL}{item.pk}/approve/").status_code == 403
    assert api("editor").post(f"{URL}{item.pk}/override/", {"label": "reject"}).status_code == 403
    r = api("owner").post(f"{URL}{item.pk}/override/", {"label": "reject", "comment": "policy"})
    assert r.status_code == 200, r.data
    assert r.data["final_label"] == "reject" and r.data["decided_by"] == team.owner.username
    assert r.data["comment"] == "unusual income source\npolicy"


def test_claim_blocks_other_reviewers_until_it_expires(api, team, queue):
    item = queue[0]
    r = api("reviewer").post(f"{URL}{item.pk}/claim/", {"minutes": 5})
    assert r.status_code == 200 and r.data["claimed_by"] == team.reviewer.username
    assert api("editor").post(f"{URL}{item.pk}/claim/").status_code == 409
    r = api("editor").post(f"{URL}{item.pk}/approve/")
    assert r.status_code == 409 and "rita" in r.data["detail"]
    listed = api("editor").get(URL, {"status": "pending", "unclaimed": "1"}).data["results"]
    assert item.pk not in [row["id"] for row in listed] and len(listed) == 5
    # The claimer decides; an expired claim frees the item for others.
    from datetime import timedelta

    from django.utils import timezone

    ReviewItem.objects.filter(pk=item.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert api("editor").post(f"{URL}{item.pk}/approve/").status_code == 200


def test_claim_rejects_bad_minutes(api, queue):
    r = api("reviewer").post(f"{URL}{queue[0].pk}/claim/", {"minutes": 0})
    assert r.status_code == 400 and "minutes" in r.data["errors"]


def test_bulk_approve_skips_decided_and_reports(api, team, queue):
    api("editor").post(f"{URL}{queue[0].pk}/override/", {"label": "reject"})
    ids = [i.pk for i in queue[:4]]
    r = api("reviewer").post(f"{URL}bulk-approve/", {"ids": ids, "comment": "screened"})
    assert r.status_code == 200, r.data
    assert sorted(r.data["approved"]) == ids[1:]
    assert [s["id"] for s in r.data["skipped"]] == [ids[0]]
    assert ReviewItem.objects.filter(status="approved", comment="screened").count() == 3


def test_bulk_approve_refuses_foreign_ids_and_changes_nothing(api, team, queue, loan):
    r = api("reviewer").post(f"{URL}bulk-approve/", {"ids": [queue[0].pk, 999999]})
    assert r.status_code == 400 and "ids" in r.data["errors"]
    r = api("outsider").post(f"{URL}bulk-approve/", {"ids": [queue[0].pk]})
    assert r.status_code == 400
    r = api("reviewer").post(f"{URL}bulk-approve/", {"ids": []})
    assert r.status_code == 400 and "ids" in r.data["errors"]
    assert ReviewItem.objects.filter(status="pending").count() == 6


def test_hold_client_polls_final_decision(api, queue):
    item = queue[0]
    r = api("owner").get(f"{URL}{item.pk}/")
    assert r.data["final"] is False and r.data["final_label"] is None
    api("reviewer").post(f"{URL}{item.pk}/override/", {"label": "reject"})
    r = api("owner").get(f"{URL}{item.pk}/")
    assert r.data["final"] is True and r.data["final_label"] == "reject"


def test_item_context_has_features_probabilities_attribution(api, queue):
    item = queue[0]
    r = api("viewer").get(f"{URL}{item.pk}/context/")
    assert r.status_code == 200, r.data
    names = [f["name"] for f in r.data["features"]]
    assert names == ["income", "debt_ratio", "credit_years", "employment"]
    income = r.data["features"][0]
    assert income["min"] < income["max"]
    assert 0 <= income["position"] <= 100 or income["note"] == "outside the training range"
    assert r.data["probabilities"][0]["label"] == item.model_label
    attrib = r.data["attribution"]["features"]
    assert len(attrib) == 4 and attrib[0]["contribution"] != 0
    assert abs(attrib[0]["contribution"]) >= abs(attrib[-1]["contribution"])
    assert api("outsider").get(f"{URL}{item.pk}/context/").status_code == 404


def test_similar_decisions_come_from_decided_items(api, queue):
    for item in queue[1:4]:
        api("reviewer").post(f"{URL}{item.pk}/approve/")
    r = api("reviewer").get(f"{URL}{queue[0].pk}/context/")
    similar = r.data["similar"]
    assert {s["id"] for s in similar} == {i.pk for i in queue[1:4]}
    assert [s["distance"] for s in similar] == sorted(s["distance"] for s in similar)


def test_openapi_schema_lists_review_paths(api):
    r = api("viewer").get("/api/v1/schema/", {"format": "json"})
    assert r.status_code == 200
    text = r.content.decode()
    for p in (
        "/api/v1/reviews/{id}/approve/",
        "/api/v1/reviews/bulk-approve/",
        "/api/v1/deployments/{id}/review-health/",
    ):
        assert p in text, p


def test_calling_application_polls_with_its_deployment_key(team, loan, queue):
    """API-key callers (request.auth is the deployment's ApiKey) read only their own items'
    public status, and nothing else of the queue."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.test import APIClient

    from deployments.models import ApiKey, Deployment

    key = ApiKey.objects.create(
        project=team.project, deployment=loan.deployment, name="app", prefix="k", key_hash="a" * 64
    )
    other = Deployment.objects.create(project=team.project, name="other", model_version=loan.model_version)
    other_key = ApiKey.objects.create(project=team.project, deployment=other, name="x", prefix="x", key_hash="b" * 64)
    client = APIClient()
    client.force_authenticate(user=AnonymousUser(), token=key)
    r = client.get(f"{URL}{queue[0].pk}/")
    assert r.status_code == 200, r.data
    assert r.data["review_id"] == queue[0].pk and r.data["final"] is False and "inputs" not in r.data
    assert client.get(URL).status_code in (401, 403)
    assert client.post(f"{URL}{queue[0].pk}/approve/").status_code in (401, 403)
    client.force_authenticate(user=AnonymousUser(), token=other_key)
    assert client.get(f"{URL}{queue[0].pk}/").status_code == 404


def test_escalation_notifies_the_project_webhook(api, team, queue):
    from jobs.models import Job

    team.project.webhook_url = "https://hooks.example.com/mlplatform"
    team.project.save()
    api("reviewer").post(f"{URL}{queue[0].pk}/escalate/", {"comment": "odd case"})
    job = Job.objects.get(kind="webhook.deliver")
    assert job.params["event"] == "review.escalated"
    assert job.params["url"] == "https://hooks.example.com/mlplatform"
    assert job.params["payload"]["review_id"] == queue[0].pk
    assert job.params["payload"]["escalated_by"] == "rita"


def test_queue_filters_validate_and_scope(api, team, queue, loan):
    r = api("reviewer").get(URL, {"status": "maybe"})
    assert r.status_code == 400 and "status" in r.data["errors"]
    assert api("reviewer").get(URL, {"deployment": loan.deployment.pk}).data["count"] == 6
    assert api("reviewer").get(URL, {"project": team.other_project.pk}).data["count"] == 0
    assert api("reviewer").get(URL, {"reason": "sample"}).data["count"] == 0
