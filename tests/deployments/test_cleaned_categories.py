"""A model trained with the recipe step clean_categories serves "Red " and "RED" as "red": the
API, "Try it" and batch files accept what the cleaning maps to a category seen in training, and
still refuse a category it has never seen."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rest_framework.test import APIClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from datasets.transformers import CategoryCleaner
from deployments.ml.schema import compile_validator, schema_infer, validate_frame
from deployments.models import Prediction
from deployments.rollout.services import deployment_create
from deployments.serving.services import api_key_create
from mlplatform.artifacts import model_save
from tests.deployments.conftest import FEATURES, loan_frame, make_evaluated_run, register_prepared
from tests.deployments.test_views import client_for

pytestmark = pytest.mark.django_db

ROW = {"age": 40, "income": 61000.5, "score": 0.7, "color": "red", "member": True}
CLEAN = [{"op": "clean_categories", "columns": ["color"], "merge_similar": True}]


def _cleaning_pipeline(frame: pd.DataFrame) -> Pipeline:
    pre = ColumnTransformer(
        [("num", "passthrough", ["age", "income", "score", "member"]), ("cat", OneHotEncoder(), ["color"])]
    )
    est = HistGradientBoostingClassifier(max_iter=15, random_state=0)
    pipe = Pipeline([("clean", CategoryCleaner(columns=("color",))), ("pre", pre), ("model", est)])
    return pipe.fit(frame[FEATURES], frame["approved"])


@pytest.fixture
def cleaning_deployment(team, go_project):
    run = make_evaluated_run(go_project, team.owner)
    stored = model_save(_cleaning_pipeline(loan_frame(300, 0)), prefix=f"projects/{go_project.pk}/models")
    type(run).objects.filter(pk=run.pk).update(final_artifact_key=stored.key, final_artifact_sha256=stored.sha256)
    run.refresh_from_db()
    run.experiment.recipe_steps = CLEAN
    run.experiment.save(update_fields=["recipe_steps"])
    version = register_prepared(run, team.owner)
    color = next(f for f in version.input_schema if f["name"] == "color")
    assert color.get("cleaned") is True and color["categories"] == ["blue", "green", "red"]
    return deployment_create(project=go_project, actor=team.owner, name="clean", model_version=version)


def _predict(deployment, user, instances):
    _, clear = api_key_create(deployment=deployment, actor=user, name=f"k{Prediction.objects.count()}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    body = json.dumps({"instances": instances})
    return client.post(f"/api/v1/deployments/{deployment.pk}/predict/", body, content_type="application/json")


def test_the_api_accepts_spellings_the_cleaning_maps_to_a_known_category(team, cleaning_deployment):
    r = _predict(cleaning_deployment, team.owner, [ROW, {**ROW, "color": "Red "}, {**ROW, "color": " RED"}])
    assert r.status_code == 200, r.content
    probabilities = [p["probabilities"] for p in r.json()["predictions"]]
    assert probabilities[1] == pytest.approx(probabilities[0]) and probabilities[2] == pytest.approx(probabilities[0])
    r = _predict(cleaning_deployment, team.owner, [{**ROW, "color": "purple"}])
    assert r.status_code == 400 and "unknown category 'purple'" in r.content.decode()
    assert Prediction.objects.filter(deployment=cleaning_deployment).count() == 3


def test_try_it_accepts_them_too(team, cleaning_deployment):
    body = json.dumps({"instances": [{**ROW, "color": "Green "}]})
    page = client_for(team.editor).post(f"/deployments/{cleaning_deployment.pk}/try/", {"body": body}).content
    assert b'id="try-result"' in page and b"try-error" not in page and b'id="try-summary"' in page
    assert Prediction.objects.get(deployment=cleaning_deployment).inputs["color"] == "Green "


def test_a_model_without_the_cleaning_still_refuses_other_spellings(team, deployment):
    r = _predict(deployment, team.owner, [{**ROW, "color": "Red "}])
    assert r.status_code == 400 and "unknown category 'Red '" in r.content.decode()


def test_batch_validation_matches_cleaned_categories():
    frame = pd.DataFrame({"color": ["red", "Red ", "BLUE", "purple", None], "n": [1.0, 2.0, 3.0, 4.0, 5.0]})
    schema = schema_infer(pd.DataFrame({"color": ["red", "blue", "red"], "n": [1.0, 2.0, 3.0]}), ["color", "n"])
    _, errors = validate_frame(frame, schema, unknown_policy="error", allow_missing=True)
    assert list(errors[:4]) == [
        "",
        "color has an unknown category",
        "color has an unknown category",
        "color has an unknown category",
    ]
    cleaned = schema_infer(
        pd.DataFrame({"color": ["red", "blue", "red"], "n": [1.0, 2.0, 3.0]}), ["color", "n"], ["color"]
    )
    for series in (frame, frame.astype({"color": "string"})):
        _, errors = validate_frame(series, cleaned, unknown_policy="error", allow_missing=True)
        assert list(errors) == ["", "", "", "color has an unknown category", ""]
    validator = compile_validator(cleaned, unknown_policy="error", allow_missing=True)
    _, errs = validator.validate([{"color": " Blue", "n": 1.0}, {"color": "bleu", "n": 1.0}])
    assert list(errs) == ["instances[1]"]
    assert np.isnan(validator.arrays({"color": [None], "n": [1.0]})["color"][0])
