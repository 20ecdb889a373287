"""Drift-aware review routing: rows unlike the training data are reviewed even when the model is
confident, with the reason; the false-alarm rate is the one the user set (within its interval)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deployments.ml.novelty import NoveltyScorer, novelty_fit
from deployments.models import Deployment, ReviewItem
from deployments.reviews import routing
from deployments.reviews.services import review_plan
from deployments.serving import services as serving_services
from projects.models import AuditEvent
from tests.reviews.conftest import FEATURES, confident_rows, loan_frame

POLICY = "/api/v1/deployments/{}/review-policy/"
REVIEWS = "/api/v1/reviews/"


def _confident_row(loan, **changes):
    row = confident_rows(loan, 1).iloc[0][FEATURES].to_dict()
    row.update(changes)
    return row


# --- the score itself (no database) ------------------------------------------------------------


def test_false_alarm_rate_on_fresh_in_distribution_rows_is_the_setting():
    schema = [{"name": c, "type": "numeric"} for c in FEATURES[:3]] + [{"name": "employment", "type": "categorical"}]
    scorer = NoveltyScorer(novelty_fit(loan_frame(12_000, seed=21)[FEATURES], schema))
    fresh = loan_frame(40_000, seed=22)
    columns = {c: fresh[c].to_numpy() for c in FEATURES}
    for rate in (0.01, 0.05):
        flagged = scorer.flag(columns, rate)[0].mean()
        # The cut-off is a quantile of 2,000 calibration rows: its own binomial spread (3 sigma)
        # plus the fresh rows' (3 sigma).
        tolerance = 3 * math.sqrt(rate * (1 - rate) / scorer.n_cal) + 3 * math.sqrt(rate / len(fresh))
        assert abs(flagged - rate) < tolerance, (rate, flagged, tolerance)
        measured = scorer.false_alarm(rate)
        assert measured["check_rows"] == 2000
        assert measured["ci_low"] <= rate + tolerance and measured["ci_high"] >= rate - tolerance


def test_novel_features_are_named_with_training_range():
    schema = [{"name": c, "type": "numeric"} for c in FEATURES[:3]] + [{"name": "employment", "type": "categorical"}]
    scorer = NoveltyScorer(novelty_fit(loan_frame(3000, seed=3)[FEATURES], schema))
    row = {"income": [412_000.0], "debt_ratio": [0.3], "credit_years": [10.0], "employment": ["astronaut"]}
    novel, _scores, parts = scorer.flag(row, 0.01)
    assert novel.tolist() == [True]
    texts = [f["text"] for f in scorer.explain(row, 0, parts[0])]
    assert texts[0].startswith("income 412,000 is above everything seen in training (max ")
    assert "employment 'astronaut' never seen in training" in texts
    usual = {"income": [50_000.0], "debt_ratio": [0.5], "credit_years": [12.0], "employment": ["salaried"]}
    assert scorer.flag(usual, 0.01)[0].tolist() == [False]


def test_too_few_rows_give_no_profile():
    profile = novelty_fit(loan_frame(50, seed=1)[FEATURES], [{"name": "income", "type": "numeric"}])
    assert profile["status"] == "skipped" and not NoveltyScorer(profile).ready


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_confident_but_novel_row_is_routed_with_its_reason(novel):
    row = _confident_row(novel, income=400_000.0)
    proba = novel.pipeline.predict_proba(pd.DataFrame([row])[FEATURES]).max()
    assert proba > 0.9  # confident: low_confidence would not route it
    _preds, items = novel.predict([row])
    assert len(items) == 1
    item = ReviewItem.objects.get(pk=items[0].pk)
    assert item.reason == "out_of_distribution"
    assert item.novelty["rate"] == 0.01 and item.novelty["score"] > item.novelty["cutoff"]
    first = item.novelty["features"][0]
    assert first["feature"] == "income" and first["kind"] == "above_range"
    assert "income 400,000 is above everything seen in training (max " in first["text"]


@pytest.mark.django_db
def test_in_distribution_confident_rows_are_not_routed(novel):
    _preds, items = novel.predict(confident_rows(novel, 20))
    assert len(items) <= 2  # 1% false alarms: 0 expected, rarely 1


@pytest.mark.django_db
def test_low_confidence_novel_row_keeps_its_reason_and_carries_the_novelty(novel):
    plan = review_plan(
        deployment=novel.deployment,
        labels=["approve", "approve"],
        confidences=[0.55, 0.99],
        model_version_id=novel.model_version.pk,
        columns={
            "income": [500_000.0, 52_000.0],
            "debt_ratio": [0.4, 0.4],
            "credit_years": [5.0, 5.0],
            "employment": ["salaried", "Mars"],
        },
    )
    assert plan[0].reason == "low_confidence" and plan[0].novelty["features"][0]["feature"] == "income"
    assert plan[1].reason == "out_of_distribution"
    assert plan[1].novelty["features"][0]["text"] == "employment 'Mars' never seen in training"


@pytest.mark.django_db
def test_rule_off_or_version_without_profile_routes_nothing(novel):
    columns = {"income": [900_000.0], "debt_ratio": [0.4], "credit_years": [5.0], "employment": ["salaried"]}
    kwargs = {"labels": ["approve"], "confidences": [0.99], "model_version_id": novel.model_version.pk}
    novel.deployment.review_policy = {"novelty_rate": 0}
    assert review_plan(deployment=novel.deployment, columns=columns, **kwargs) == [None]
    novel.deployment.review_policy = {"novelty_rate": 0.01}
    assert review_plan(deployment=novel.deployment, columns=columns, **kwargs)[0].reason == "out_of_distribution"
    routing._scorers.clear()
    type(novel.model_version).objects.filter(pk=novel.model_version.pk).update(reference_stats={})
    assert review_plan(deployment=novel.deployment, columns=columns, **kwargs) == [None]


@pytest.mark.django_db
def test_the_predict_service_routes_novel_rows(novel):
    rows = [_confident_row(novel), _confident_row(novel, income=380_000.0)]
    result = serving_services.predict(deployment=novel.deployment, instances=rows, caller="t", source="simulator")
    assert [p["status"] for p in result.predictions] == ["accepted", "pending_review"]
    item = ReviewItem.objects.get(prediction_id=result.predictions[1]["id"])
    assert item.reason == "out_of_distribution" and item.novelty["features"][0]["feature"] == "income"


# --- API ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_sets_the_rate_and_lists_items_by_reason(api, team, novel):
    novel.deployment.review_policy = {}
    novel.deployment.save()
    r = api("editor").patch(
        POLICY.format(novel.deployment.pk), {"review_policy": {"novelty_rate": 0.02}}, format="json"
    )
    assert r.status_code == 200, r.data
    assert r.data["review_policy"]["novelty_rate"] == 0.02
    novel.deployment.refresh_from_db()
    novel.predict([_confident_row(novel, income=450_000.0), *confident_rows(novel, 3).to_dict("records")])
    r = api("viewer").get(REVIEWS, {"project": team.project.pk, "reason": "out_of_distribution"})
    assert r.status_code == 200 and r.data["count"] >= 1
    row = next(x for x in r.data["results"] if x["inputs"]["income"] == 450_000.0)
    assert "above everything seen in training" in row["novelty"]["features"][0]["text"]
    health = api("viewer").get(f"/api/v1/deployments/{novel.deployment.pk}/review-health/").data
    assert health["policy"]["novelty_rate"] == 0.02
    fa = health["novelty"]["false_alarm"]
    assert fa["rate"] == 0.02 and fa["check_rows"] == 600 and fa["ci_low"] <= fa["measured"] <= fa["ci_high"]
    assert health["routed_by_reason"]["out_of_distribution"] >= 1


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [0.5, -0.01, 0.0001, "often", True, [0.01]])
def test_bad_rate_is_400_naming_the_field_and_changes_nothing(api, novel, bad):
    before = AuditEvent.objects.count()
    r = api("editor").patch(POLICY.format(novel.deployment.pk), {"review_policy": {"novelty_rate": bad}}, format="json")
    assert r.status_code == 400
    assert "review_policy" in r.data["errors"] and "novelty_rate" in str(r.data["errors"]["review_policy"])
    novel.deployment.refresh_from_db()
    assert novel.deployment.review_policy == {"novelty_rate": 0.01}
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_rate_refused_for_a_version_without_profile(api, loan):
    routing._scorers.clear()
    r = api("editor").patch(POLICY.format(loan.deployment.pk), {"review_policy": {"novelty_rate": 0.01}}, format="json")
    assert r.status_code == 400 and "no novelty profile" in str(r.data["errors"]["review_policy"])
    loan.deployment.refresh_from_db()
    assert "novelty_rate" not in loan.deployment.review_policy


@pytest.mark.django_db
def test_cross_project_404_and_wrong_role_403(api, novel):
    url = POLICY.format(novel.deployment.pk)
    body = {"review_policy": {"novelty_rate": 0.05}}
    assert api("outsider").patch(url, body, format="json").status_code == 404
    assert api("outsider").get(url).status_code == 404
    assert api("viewer").patch(url, body, format="json").status_code == 403
    assert api("reviewer").patch(url, body, format="json").status_code == 403
    assert Deployment.objects.get(pk=novel.deployment.pk).review_policy == {"novelty_rate": 0.01}
    novel.predict([_confident_row(novel, income=450_000.0)])
    item = ReviewItem.objects.get(deployment=novel.deployment)
    assert api("outsider").get(f"{REVIEWS}{item.pk}/").status_code == 404
    assert api("outsider").get(REVIEWS, {"reason": "out_of_distribution"}).data["count"] == 0


def test_scorer_is_vectorised_over_rows():
    schema = [{"name": c, "type": "numeric"} for c in FEATURES[:3]] + [{"name": "employment", "type": "categorical"}]
    scorer = NoveltyScorer(novelty_fit(loan_frame(2000, seed=5)[FEATURES], schema))
    frame = loan_frame(500, seed=6)
    batch = scorer.scores({c: frame[c].to_numpy() for c in FEATURES})
    one_by_one = [scorer.scores({c: [frame[c].iloc[i]] for c in FEATURES})[0] for i in range(0, 500, 50)]
    assert np.allclose(batch[::50], one_by_one)


def test_values_common_alone_but_never_together_are_novel():
    rng = np.random.default_rng(4)
    income = rng.normal(50_000, 12_000, 4000)
    frame = pd.DataFrame({"income": income, "debt": income * 0.3 + rng.normal(0, 1500, 4000)})
    schema = [{"name": "income", "type": "numeric"}, {"name": "debt", "type": "numeric"}]
    scorer = NoveltyScorer(novelty_fit(frame, schema))
    # Each value sits inside its training range; together they are far from anything seen.
    row = {"income": [35_000.0], "debt": [19_000.0]}
    novel, _scores, parts = scorer.flag(row, 0.01)
    assert novel.tolist() == [True]
    reasons = scorer.explain(row, 0, parts[0])
    assert reasons[0]["kind"] == "unusual_combination"
    assert "(training rows rarely combine them)" in reasons[0]["text"]
    assert scorer.flag({"income": [35_000.0], "debt": [10_500.0]}, 0.01)[0].tolist() == [False]


def test_the_drift_reference_carries_the_profile_as_plain_json():
    import json

    from deployments.ml.reference import reference_build

    schema = [{"name": c, "type": "numeric"} for c in FEATURES[:3]] + [{"name": "employment", "type": "categorical"}]
    stats = reference_build(frame=loan_frame(3000, seed=2)[FEATURES], input_schema=schema).stats
    profile = stats["novelty"]
    assert profile["status"] == "ready" and profile["calibration"]["n"] == 600
    assert len(json.dumps(profile)) < 20_000  # small: read once per process by the predict path
    assert NoveltyScorer(json.loads(json.dumps(profile))).ready


# --- the policy form ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("outsider", 404), ("viewer", 403), ("reviewer", 403)])
def test_policy_form_refuses_other_roles(client, team, novel, role, status):
    client.force_login(team.user(role))
    url = f"/projects/{team.project.pk}/reviews/health/{novel.deployment.pk}/"
    assert client.post(url, {"novelty_rate": "5", "sample_rate": "0"}).status_code == status
    assert Deployment.objects.get(pk=novel.deployment.pk).review_policy == {"novelty_rate": 0.01}


@pytest.mark.django_db
def test_policy_form_takes_percent_and_names_the_field_on_bad_input(client, team, novel):
    client.force_login(team.editor)
    url = f"/projects/{team.project.pk}/reviews/health/{novel.deployment.pk}/"
    r = client.post(url, {"novelty_rate": "often", "sample_rate": "0"}, follow=True)
    assert b"novelty_rate" in r.content
    assert Deployment.objects.get(pk=novel.deployment.pk).review_policy == {"novelty_rate": 0.01}
    assert client.post(url, {"novelty_rate": "2.5", "sample_rate": "0"}).status_code == 302
    assert Deployment.objects.get(pk=novel.deployment.pk).review_policy["novelty_rate"] == pytest.approx(0.025)
    page = client.get(url).content.decode()
    assert 'value="2.5"' in page and "held-out training rows flagged" in page
    assert client.post(url, {"novelty_rate": "", "sample_rate": "0"}).status_code == 302
    assert "novelty_rate" not in Deployment.objects.get(pk=novel.deployment.pk).review_policy


def test_explanations_hold_whatever_the_order_of_the_schema():
    schema = [{"name": "employment", "type": "categorical"}] + [{"name": c, "type": "numeric"} for c in FEATURES[:3]]
    scorer = NoveltyScorer(novelty_fit(loan_frame(3000, seed=9)[FEATURES], schema))
    row = {"employment": ["Mars"], "income": [50_000.0], "debt_ratio": [0.5], "credit_years": [15.0]}
    novel, _scores, parts = scorer.flag(row, 0.01)
    assert novel.tolist() == [True]
    assert [r["kind"] for r in scorer.explain(row, 0, parts[0])] == ["unseen_category"]
