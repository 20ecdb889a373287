"""A small loan-approval model, a deployment, and predictions made exactly as the predict service
makes them: review_plan before writing, review_items_create in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.db import transaction
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from deployments.ml.novelty import novelty_fit
from deployments.models import Deployment, ModelVersion, Prediction, PredictionStatus, ReviewMode, uuid7
from deployments.reviews import routing
from deployments.reviews.services import review_items_create, review_plan
from mlplatform.artifacts import model_save

FEATURES = ["income", "debt_ratio", "credit_years", "employment"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed"]


def loan_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50_000, 15_000, n).round(0),
            "debt_ratio": rng.uniform(0, 1, n).round(3),
            "credit_years": rng.integers(0, 30, n).astype(float),
            "employment": rng.choice(EMPLOYMENT, n, p=[0.6, 0.3, 0.1]),
        }
    )
    score = (
        (frame.income - 50_000) / 15_000
        - 3 * (frame.debt_ratio - 0.5)
        + 0.05 * frame.credit_years
        - 1.5 * (frame.employment == "unemployed")
        + rng.normal(0, 0.8, n)
    )
    frame["decision"] = np.where(score > 0, "approve", "reject")
    return frame


@pytest.fixture(scope="session")
def loan_pipeline():
    frame = loan_frame(400, seed=1)
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["income", "debt_ratio", "credit_years"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["employment"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    pipe.fit(frame[FEATURES], frame["decision"])
    return pipe, frame


@dataclass
class Loan:
    project: Any
    model_version: ModelVersion
    deployment: Deployment
    pipeline: Any
    frame: pd.DataFrame

    def predict(self, rows: list[dict[str, Any]] | pd.DataFrame, deployment: Deployment | None = None):
        """Log predictions like the predict service does; returns (predictions, items)."""
        deployment = deployment or self.deployment
        frame = pd.DataFrame(rows, columns=FEATURES) if not isinstance(rows, pd.DataFrame) else rows[FEATURES]
        proba = self.pipeline.predict_proba(frame)
        classes = [str(c) for c in self.pipeline.classes_]
        labels = [classes[i] for i in proba.argmax(axis=1)]
        confidences = [float(p.max()) for p in proba]
        plan = review_plan(
            deployment=deployment,
            labels=labels,
            confidences=confidences,
            model_version_id=deployment.model_version_id,
            columns={c: frame[c].tolist() for c in FEATURES},
        )
        now = timezone.now()
        predictions = []
        for record, label, conf, p, route in zip(
            frame.to_dict("records"), labels, confidences, proba, plan, strict=True
        ):
            held = route is not None and deployment.review_mode == ReviewMode.HOLD
            predictions.append(
                Prediction(
                    id=uuid7(),
                    project=deployment.project,
                    deployment=deployment,
                    model_version=deployment.model_version,
                    inputs=record,
                    prediction=label,
                    confidence=conf,
                    probabilities=dict(zip(classes, [round(float(x), 6) for x in p], strict=True)),
                    status=PredictionStatus.PENDING_REVIEW if held else PredictionStatus.ACCEPTED,
                    created_at=now,
                )
            )
        with transaction.atomic():
            Prediction.objects.bulk_create(predictions)
            items = review_items_create(deployment=deployment, predictions=predictions, plan=plan)
        return predictions, items


def make_model_version(project, pipeline, frame, version: int = 1) -> ModelVersion:
    stored = model_save(pipeline, prefix=f"models/{project.pk}")
    schema = [
        {
            "name": c,
            "type": "numeric",
            "min": float(frame[c].min()),
            "max": float(frame[c].max()),
            "median": float(frame[c].median()),
            "nullable": False,
        }
        for c in ["income", "debt_ratio", "credit_years"]
    ] + [{"name": "employment", "type": "categorical", "categories": EMPLOYMENT, "mode": "salaried", "nullable": False}]
    return ModelVersion.objects.create(
        project=project,
        version=version,
        name="loan-logreg",
        task_type="classification",
        target="decision",
        classes=[str(c) for c in pipeline.classes_],
        artifact_key=stored.key,
        sha256=stored.sha256,
        size_bytes=stored.size,
        input_schema=schema,
    )


@pytest.fixture
def loan(team, loan_pipeline) -> Loan:
    pipe, frame = loan_pipeline
    mv = make_model_version(team.project, pipe, frame)
    deployment = Deployment.objects.create(
        project=team.project,
        name="loans",
        model_version=mv,
        review_threshold=0.8,
        review_mode=ReviewMode.HOLD,
        review_policy={"class_thresholds": {}, "always_review": [], "sample_rate": 0.0},
        review_sla_minutes=60,
        created_by=team.owner,
    )
    return Loan(team.project, mv, deployment, pipe, frame)


def uncertain_rows(loan: Loan, n: int, seed: int = 7) -> pd.DataFrame:
    """Applications the model is unsure about (confidence under the 0.8 threshold)."""
    frame = loan_frame(2000, seed=seed)
    conf = loan.pipeline.predict_proba(frame[FEATURES]).max(axis=1)
    return frame[conf < 0.75].head(n)


def confident_rows(loan: Loan, n: int, seed: int = 8) -> pd.DataFrame:
    frame = loan_frame(2000, seed=seed)
    conf = loan.pipeline.predict_proba(frame[FEATURES]).max(axis=1)
    return frame[conf > 0.95].head(n)


def _profile(input_schema):
    return novelty_fit(loan_frame(3000, seed=11)[FEATURES], input_schema)


@pytest.fixture
def novel(loan):
    """The loan deployment with its version's novelty profile and the rule on at 1%."""
    routing._scorers.clear()
    mv = loan.model_version
    mv.reference_stats = {"novelty": _profile(mv.input_schema)}
    mv.save(update_fields=["reference_stats"])
    loan.deployment.review_policy = {"novelty_rate": 0.01}
    loan.deployment.save()
    yield loan
    routing._scorers.clear()
