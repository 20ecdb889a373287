from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Alert, ReviewItem
from deployments.reviews.selectors import qc_estimate, review_health, threshold_advice
from deployments.reviews.services import review_decide, review_sla_check, review_sla_check_all
from tests.reviews.conftest import confident_rows, uncertain_rows

pytestmark = pytest.mark.django_db


def _flip(label):
    return "reject" if label == "approve" else "approve"


def test_health_counts_ages_and_override_rates(team, loan):
    _, items = loan.predict(uncertain_rows(loan, 10))
    now = timezone.now()
    for n, item in enumerate(items):
        ReviewItem.objects.filter(pk=item.pk).update(created_at=now - timedelta(minutes=100 - n))
        item.refresh_from_db()
    # 6 decided: 2 overrides by rita, 4 approvals (2 by rita, 2 by eddie); 1 escalated; 3 pending.
    for item in items[:2]:
        review_decide(item=item, actor=team.reviewer, action="override", label=_flip(item.model_label))
    for item in items[2:4]:
        review_decide(item=item, actor=team.reviewer, action="approve")
    for item in items[4:6]:
        review_decide(item=item, actor=team.editor, action="approve")
    review_decide(item=items[6], actor=team.reviewer, action="escalate")
    health = review_health(deployment=loan.deployment)
    assert health["pending"] == 3 and health["escalated"] == 1
    # The oldest waiting item is items[6] (created 94 minutes ago).
    assert 94 * 60 - 5 < health["oldest_age_seconds"] < 94 * 60 + 30
    assert health["sla_breached"] is True  # SLA 60 minutes
    assert health["decided"] == 6
    assert health["override_rate"] == pytest.approx(2 / 6, abs=1e-4)
    per_class = health["override_rate_per_class"]
    assert sum(v["decided"] for v in per_class.values()) == 6
    assert sum(v["overridden"] for v in per_class.values()) == 2
    waits = sorted(
        (i.decided_at - i.created_at).total_seconds() for i in ReviewItem.objects.filter(decided_at__isnull=False)
    )
    assert health["median_time_to_decision_seconds"] == pytest.approx((waits[2] + waits[3]) / 2, abs=0.2)
    reviewers = {r["username"]: r for r in health["reviewers"]}
    assert reviewers["rita"]["decided"] == 4 and reviewers["rita"]["overridden"] == 2
    assert reviewers["eddie"]["decided"] == 2 and reviewers["eddie"]["last_24h"] == 2
    import json

    json.dumps(health)  # JSON-safe for monitoring snapshots


def test_qc_sample_estimates_accuracy_of_unreviewed_predictions(team, loan):
    loan.deployment.review_threshold = None
    loan.deployment.review_policy = {"sample_rate": 1.0}
    loan.deployment.save()
    _, items = loan.predict(confident_rows(loan, 20))
    assert {i.reason for i in items} == {"sample"}
    ReviewItem.objects.filter(pk__in=[i.pk for i in items]).update(sample_weight=10.0)
    for n, item in enumerate(items):
        item.refresh_from_db()
        if n < 2:
            review_decide(item=item, actor=team.reviewer, action="override", label=_flip(item.model_label))
        else:
            review_decide(item=item, actor=team.reviewer, action="approve")
    qc = review_health(deployment=loan.deployment)["qc_sample"]
    assert qc["n"] == 20 and qc["accuracy"] == pytest.approx(0.9)
    assert qc["ci_low"] < 0.9 < qc["ci_high"]
    assert qc["represents"] == 200
    assert 0.6 < qc["ci_low"] < 0.8  # Wilson on n=20


def test_qc_estimate_weights_by_sampling_rate():
    # Ten items sampled at 10% (weight 10) all right, ten at 50% (weight 2) all wrong:
    # the heavily weighted stratum dominates, and the effective n shrinks below 20.
    est = qc_estimate([(True, 10.0)] * 10 + [(False, 2.0)] * 10)
    assert est["accuracy"] == pytest.approx(100 / 120, abs=1e-4)
    assert est["effective_n"] < 20
    assert est["ci_low"] < est["accuracy"] < est["ci_high"]
    assert qc_estimate([])["accuracy"] is None


def test_threshold_advice_trades_load_for_errors():
    decided = [(0.55, True, 1.0), (0.62, True, 1.0), (0.68, False, 1.0), (0.74, False, 1.0), (0.97, True, 20.0)]
    decided += [(0.96, False, 20.0)] * 9
    confidences = [0.55, 0.62, 0.68, 0.74] + [0.96] * 96
    rows = threshold_advice(decided=decided, confidences=confidences, days=2.0, current=0.75)
    by_t = {r["threshold"]: r for r in rows}
    assert by_t[0.75]["current"] is True
    assert by_t[0.75]["review_share"] == pytest.approx(0.04)
    assert by_t[0.75]["reviews_per_day"] == pytest.approx(2.0)
    assert by_t[0.75]["override_rate_below"] == pytest.approx(0.5)
    # Unreviewed error above 0.75 comes only from the weighted QC sample: 1 in 10.
    assert by_t[0.75]["unreviewed_error_estimate"] == pytest.approx(0.1)
    # Lowering the threshold to 0.6 lets the 0.62 override through: the estimate rises.
    assert by_t[0.6]["unreviewed_error_estimate"] > by_t[0.75]["unreviewed_error_estimate"]
    shares = [r["review_share"] for r in rows]
    assert shares == sorted(shares)


def test_health_includes_threshold_advice_from_real_predictions(team, loan):
    loan.predict(confident_rows(loan, 30))
    _, items = loan.predict(uncertain_rows(loan, 10))
    for item in items:
        review_decide(item=item, actor=team.reviewer, action="approve")
    advice = review_health(deployment=loan.deployment)["threshold_advice"]
    current = [r for r in advice if r["current"]]
    assert len(current) == 1 and current[0]["threshold"] == 0.8
    assert current[0]["review_share"] == pytest.approx(10 / 40)


def test_sla_alert_fires_once_and_resolves(team, loan):
    _, items = loan.predict(uncertain_rows(loan, 2))
    review_sla_check(deployment=loan.deployment)
    assert not Alert.objects.filter(key="review_sla").exists()
    old = timezone.now() - timedelta(minutes=90)
    ReviewItem.objects.filter(pk=items[0].pk).update(created_at=old)
    review_sla_check(deployment=loan.deployment)
    review_sla_check(deployment=loan.deployment)
    alert = Alert.objects.get(key="review_sla", state="firing")
    assert alert.value > 89 and alert.threshold == 60 and alert.kind == "review_sla"
    assert Alert.objects.filter(key="review_sla").count() == 1
    items[0].refresh_from_db()
    review_decide(item=items[0], actor=team.reviewer, action="approve")
    review_sla_check(deployment=loan.deployment)
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None
    # A new breach opens a new firing row; the resolved one stays as history.
    ReviewItem.objects.filter(pk=items[1].pk).update(created_at=old)
    review_sla_check(deployment=loan.deployment)
    assert Alert.objects.filter(key="review_sla").count() == 2
    assert Alert.objects.filter(key="review_sla", state="firing").count() == 1


def test_health_api_permissions(api, team, loan):
    loan.predict(uncertain_rows(loan, 3))
    url = f"/api/v1/deployments/{loan.deployment.pk}/review-health/"
    r = api("viewer").get(url)
    assert r.status_code == 200 and r.data["pending"] == 3
    assert api("outsider").get(url).status_code == 404
    assert api("viewer").get("/api/v1/deployments/999999/review-health/").status_code == 404


def test_sla_check_all_covers_deployments_with_waiting_items(team, loan):
    _, items = loan.predict(uncertain_rows(loan, 1))
    ReviewItem.objects.filter(pk=items[0].pk).update(created_at=timezone.now() - timedelta(hours=3))
    assert review_sla_check_all() == 1
    assert Alert.objects.get(key="review_sla").severity == "critical"  # past twice the 60-minute SLA
    ReviewItem.objects.filter(pk=items[0].pk).update(status="approved", decided_at=timezone.now())
    assert review_sla_check_all() == 1  # the firing alert's deployment is checked and resolved
    assert Alert.objects.get(key="review_sla").state == "resolved"


def test_threshold_advice_says_when_there_is_no_qc_sample():
    decided = [(0.55, True, 1.0), (0.62, False, 1.0), (0.7, True, 1.0)]
    rows = {r["threshold"]: r for r in threshold_advice(decided=decided, confidences=[0.5] * 10, days=1, current=0.75)}
    assert rows[0.6]["estimate_basis"].startswith("band only")
    assert rows[0.6]["unreviewed_error_estimate"] == pytest.approx(0.5)
    assert rows[0.8]["unreviewed_error_estimate"] is None and rows[0.8]["estimate_basis"] is None
