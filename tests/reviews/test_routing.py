from __future__ import annotations

import pytest

from deployments.models import Prediction, ReviewItem, ReviewMode
from deployments.reviews.routing import Route, policy_validate
from deployments.reviews.services import review_plan
from mlplatform.errors import InvalidInput
from tests.reviews.conftest import confident_rows, uncertain_rows

pytestmark = pytest.mark.django_db


def test_low_confidence_routes_and_hold_mode_holds(loan):
    preds, items = loan.predict(uncertain_rows(loan, 5))
    assert len(items) == 5
    assert {i.reason for i in items} == {"low_confidence"}
    assert all(p.status == "pending_review" for p in preds)
    item = ReviewItem.objects.get(pk=items[0].pk)
    assert item.mode == "hold"
    assert item.model_label == preds[0].prediction
    assert item.confidence == pytest.approx(preds[0].confidence)


def test_confident_predictions_are_not_routed(loan):
    preds, items = loan.predict(confident_rows(loan, 5))
    assert items == []
    assert all(p.status == "accepted" for p in preds)
    assert Prediction.objects.filter(deployment=loan.deployment).count() == 5


def test_flag_mode_returns_prediction_and_queues(loan):
    loan.deployment.review_mode = ReviewMode.FLAG
    loan.deployment.save()
    preds, items = loan.predict(uncertain_rows(loan, 3))
    assert len(items) == 3 and all(i.mode == "flag" for i in items)
    assert all(p.status == "accepted" for p in preds)


def test_always_review_class_rule(loan):
    loan.deployment.review_policy = {"always_review": ["reject"]}
    loan.deployment.review_threshold = None
    loan.deployment.save()
    plan = review_plan(deployment=loan.deployment, labels=["reject", "approve", "reject"], confidences=[0.99, 0.51, 1])
    assert plan == [Route("class_rule"), None, Route("class_rule")]


def test_per_class_threshold_overrides_global(loan):
    loan.deployment.review_threshold = 0.6
    loan.deployment.review_policy = {"class_thresholds": {"approve": 0.9}}
    plan = review_plan(
        deployment=loan.deployment, labels=["approve", "reject", "reject"], confidences=[0.85, 0.85, 0.55]
    )
    assert plan == [Route("low_confidence"), None, Route("low_confidence")]


def test_integer_labels_match_string_policy_keys(loan):
    loan.deployment.review_threshold = None
    loan.deployment.review_policy = {"always_review": [1], "class_thresholds": {"0": 0.7}}
    plan = review_plan(deployment=loan.deployment, labels=[1, 0, 0], confidences=[0.99, 0.6, 0.8])
    assert plan == [Route("class_rule"), Route("low_confidence"), None]


def test_random_sample_rate_and_weight(loan):
    loan.deployment.review_threshold = None
    loan.deployment.review_policy = {"sample_rate": 0.1}
    plan = review_plan(deployment=loan.deployment, labels=["approve"] * 5000, confidences=[0.99] * 5000)
    sampled = [r for r in plan if r is not None]
    assert 350 < len(sampled) < 650  # 500 expected; 6 sigma either side
    assert {r.reason for r in sampled} == {"sample"}
    assert sampled[0].sample_weight == pytest.approx(10.0)


def test_sample_only_draws_from_predictions_not_otherwise_routed(loan):
    loan.deployment.review_threshold = 0.9
    loan.deployment.review_policy = {"sample_rate": 1.0}
    plan = review_plan(deployment=loan.deployment, labels=["a", "b"], confidences=[0.5, 0.95])
    assert plan == [Route("low_confidence"), Route("sample", 1.0)]


def test_no_policy_routes_nothing(loan):
    loan.deployment.review_threshold = None
    loan.deployment.review_policy = {}
    assert review_plan(deployment=loan.deployment, labels=["a"], confidences=[0.1]) == [None]


def test_items_rolled_back_with_their_predictions(loan):
    from django.db import transaction

    rows = uncertain_rows(loan, 2)
    with pytest.raises(RuntimeError), transaction.atomic():
        loan.predict(rows)
        raise RuntimeError("predict failed after logging")
    assert ReviewItem.objects.count() == 0
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize(
    "policy",
    [
        [],
        {"sample_rate": 2},
        {"sample_rate": "often"},
        {"class_thresholds": {"approve": 1.5}},
        {"class_thresholds": ["approve"]},
        {"always_review": "reject"},
        {"bogus": 1},
    ],
)
def test_policy_validate_rejects_bad_policies(policy):
    with pytest.raises(InvalidInput) as exc:
        policy_validate(policy)
    assert exc.value.field == "review_policy"


def test_label_validate_canonicalises_classes_and_numbers():
    from deployments.models import ModelVersion
    from deployments.reviews.services import label_validate

    clf = ModelVersion(task_type="classification", classes=[0, 1])
    assert label_validate(model_version=clf, label="1") == 1
    assert label_validate(model_version=clf, label=0) == 0
    with pytest.raises(InvalidInput):
        label_validate(model_version=clf, label=2)
    reg = ModelVersion(task_type="regression", classes=[])
    assert label_validate(model_version=reg, label="12.5") == 12.5
    for bad in ("lots", float("nan"), True, None):
        with pytest.raises(InvalidInput) as exc:
            label_validate(model_version=reg, label=bad)
        assert exc.value.field == "label"


def test_feature_context_reads_reference_summaries():
    from deployments.models import ModelVersion
    from deployments.reviews.context import feature_context

    mv = ModelVersion(
        task_type="classification",
        input_schema=[
            {"name": "a", "type": "numeric", "min": 0, "max": 100},
            {"name": "b", "type": "numeric", "min": 0, "max": 10},
            {"name": "c", "type": "numeric", "min": 0, "max": 4},
            {"name": "d", "type": "categorical", "categories": ["x", "y"]},
        ],
        reference_stats={
            "features": {
                "a": {"sample": [1, 2, 3, 4, 5, 6, 7, 8, 9, 90]},
                "b": {"edges": [0, 5, 10], "counts": [30, 10]},
                "d": {"shares": {"x": 0.9, "y": 0.1}},
            }
        },
    )
    rows = {r["name"]: r for r in feature_context(mv, {"a": 8.5, "b": 7.5, "c": 5, "d": "z"})}
    assert rows["a"]["percentile"] == 80.0  # skewed sample: far from the 8.5% of the range
    assert rows["b"]["percentile"] == 87.5  # 30 below 5, half of the 10 in [5, 10)
    assert rows["c"]["position"] == 125.0 and rows["c"]["note"] == "outside the training range"
    assert rows["d"]["note"] == "not seen in training" and rows["d"]["share"] is None
