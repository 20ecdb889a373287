"""Live performance uses the model version's positive class, not "the last class".

The model's classes sort as ["approve", "reject"]; the project cares about "approve" (its
experiment chose it): live precision, recall and F1 are about "approve".
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from sklearn import metrics as skm

from deployments.models import Prediction
from deployments.monitoring.services import snapshots
from tests.monitoring.helpers import make_deployment

pytestmark = pytest.mark.django_db


def test_live_binary_metrics_are_about_the_models_positive_class(team):
    deployment = make_deployment(team.project, team.owner, labels=("reject", "approve"))
    mv = deployment.model_version
    assert mv.classes == ["approve", "reject"] and mv.positive_class == "approve"
    rng = np.random.default_rng(3)
    truth = rng.choice(["approve", "reject"], size=300, p=[0.3, 0.7])
    pred = np.where(rng.random(300) < 0.25, np.where(truth == "approve", "reject", "approve"), truth)
    now = timezone.now() - timedelta(minutes=5)
    Prediction.objects.bulk_create(
        Prediction(
            project=deployment.project,
            deployment=deployment,
            model_version=mv,
            inputs={"x0": 0.0, "x1": 0.0, "x2": 0.0, "x3": 0.0, "color": "red"},
            prediction=str(p),
            confidence=0.8,
            probabilities={"approve": 0.8 if p == "approve" else 0.2, "reject": 0.2 if p == "approve" else 0.8},
            created_at=now + timedelta(milliseconds=i),
            actual=str(t),
            actual_source="feedback",
            actual_at=now,
        )
        for i, (t, p) in enumerate(zip(truth, pred, strict=True))
    )
    live = snapshots.snapshot_compute(deployment=deployment).data["performance"]["metrics"]
    assert live["f1"]["value"] == pytest.approx(skm.f1_score(truth, pred, pos_label="approve"))
    assert live["recall"]["value"] == pytest.approx(skm.recall_score(truth, pred, pos_label="approve"))
    assert live["f1"]["value"] != pytest.approx(skm.f1_score(truth, pred, pos_label="reject"))
    assert live["roc_auc"]["value"] == pytest.approx(
        skm.roc_auc_score(truth == "approve", np.where(pred == "approve", 0.8, 0.2))
    )
