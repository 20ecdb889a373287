from __future__ import annotations

import pytest

from deployments.models import Deployment
from deployments.reviews.services import review_plan
from projects.models import AuditEvent

pytestmark = pytest.mark.django_db


def url(loan):
    return f"/api/v1/deployments/{loan.deployment.pk}/review-policy/"


def test_editor_sets_policy_and_routing_follows(api, loan):
    body = {
        "review_threshold": 0.7,
        "review_mode": "flag",
        "review_policy": {"class_thresholds": {"reject": 0.9}, "always_review": [], "sample_rate": 0.05},
        "review_sla_minutes": 30,
    }
    r = api("editor").patch(url(loan), body, format="json")
    assert r.status_code == 200, r.data
    assert r.data["review_threshold"] == 0.7 and r.data["review_mode"] == "flag"
    assert "webhook_secret" not in r.data  # decisions are signed with the project's secret
    d = Deployment.objects.get(pk=loan.deployment.pk)
    assert d.review_sla_minutes == 30 and d.review_policy["class_thresholds"] == {"reject": 0.9}
    plan = review_plan(deployment=d, labels=["reject", "approve"], confidences=[0.85, 0.85])
    assert plan[0] is not None and plan[0].reason == "low_confidence"
    event = AuditEvent.objects.get(action="deployment.review_policy_updated")
    assert event.data["changed"]["review_threshold"] == {"from": 0.8, "to": 0.7}


def test_viewer_reads_policy_without_secret_and_cannot_change(api, loan):
    r = api("viewer").get(url(loan))
    assert r.status_code == 200 and "webhook_secret" not in r.data and r.data["review_webhook_url"] is None
    assert api("viewer").patch(url(loan), {"review_threshold": 0.5}, format="json").status_code == 403
    assert api("reviewer").patch(url(loan), {"review_threshold": 0.5}, format="json").status_code == 403
    assert api("outsider").get(url(loan)).status_code == 404
    assert api("outsider").patch(url(loan), {"review_threshold": 0.5}, format="json").status_code == 404
    assert Deployment.objects.get(pk=loan.deployment.pk).review_threshold == 0.8


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"review_threshold": 1.5}, "review_threshold"),
        ({"review_threshold": "high"}, "review_threshold"),
        ({"review_mode": "later"}, "review_mode"),
        ({"review_policy": {"sample_rate": 3}}, "review_policy"),
        ({"review_sla_minutes": 0}, "review_sla_minutes"),
        ({"review_webhook_url": "ftp://x.example.com/"}, "review_webhook_url"),
        ({"review_webhook_url": "https://user:pw@x.example.com/"}, "review_webhook_url"),
        ({"review_threshold": 0.5, "model_version": 3}, "model_version"),
    ],
)
def test_bad_policy_names_the_field_and_changes_nothing(api, loan, body, field):
    r = api("owner").patch(url(loan), body, format="json")
    assert r.status_code == 400 and field in r.data["errors"], r.data
    d = Deployment.objects.get(pk=loan.deployment.pk)
    assert d.review_threshold == 0.8 and d.review_mode == "hold" and d.review_sla_minutes == 60
    assert not AuditEvent.objects.filter(action="deployment.review_policy_updated").exists()


def test_threshold_can_be_cleared(api, loan):
    r = api("owner").patch(url(loan), {"review_threshold": None}, format="json")
    assert r.status_code == 200 and r.data["review_threshold"] is None
