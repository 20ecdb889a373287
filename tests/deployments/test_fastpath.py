"""The compiled scoring path: equal to the pipeline bit for bit, or not used at all."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from django.test import override_settings
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)

from datasets.recipes import auto_plan
from datasets.transformers import DateParts
from deployments.ml import fastpath
from deployments.ml import schema as schema_core
from deployments.serving.services import api_key_create
from tests.deployments.conftest import FEATURES, fitted_pipeline, loan_frame


def validator_for(frame: pd.DataFrame, features: list[str]):
    inferred = schema_core.schema_infer(frame, features)
    return inferred, schema_core.compile_validator(inferred, unknown_policy="allow", allow_missing=True)


def messy_frame(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """Missing values, a rare-category column (infrequent grouping), booleans, ints and floats."""
    rng = np.random.default_rng(seed)
    frame = loan_frame(n, seed)
    frame.loc[rng.random(n) < 0.08, "income"] = np.nan
    frame["color"] = frame["color"].astype(object)
    frame.loc[rng.random(n) < 0.08, "color"] = None
    frame["city"] = rng.choice([f"city{i}" for i in range(70)], n)
    return frame


def rows_of(frame: pd.DataFrame, features: list[str]) -> list[dict]:
    """Rows as the API receives them (JSON values: None for missing)."""
    return json.loads(frame[features].to_json(orient="records"))


def assert_same_scores(pipe, compiled, validator, rows: list[dict]) -> None:
    for row in rows:
        columns, errors = validator.validate([row])
        assert not errors, errors
        slow = pipe.predict_proba(validator.frame(columns))
        fast = compiled.predict_proba(validator.arrays(columns))
        assert np.array_equal(slow, fast), (row, slow, fast)


def test_the_benchmark_shape_compiles_and_scores_exactly_like_the_pipeline():
    frame = loan_frame(400, seed=1)
    pipe = fitted_pipeline(frame, "approved", "classification")
    schema, validator = validator_for(frame, FEATURES)
    compiled = fastpath.compile_model(pipe)
    assert compiled is not None
    assert fastpath.verify(compiled, validator, schema) is None
    rows = rows_of(loan_frame(150, seed=9), FEATURES)
    rows += [{**rows[0], "color": "purple"}, {**rows[1], "income": None}, {**rows[2], "color": None}]
    assert_same_scores(pipe, compiled, validator, rows)


@pytest.mark.parametrize(
    "estimator",
    [
        HistGradientBoostingClassifier(max_iter=20),
        LogisticRegression(max_iter=300),
        LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1),  # the catalogue's "lightgbm"
    ],
)
def test_the_platforms_own_recipe_compiles_with_missing_values_and_rare_categories(estimator):
    frame = messy_frame()
    features = [*FEATURES, "city"]
    plan = auto_plan(frame[[*features, "approved"]], target="approved")
    pipe = Pipeline([("columns", plan.preprocessor), ("model", estimator)]).fit(frame[features], frame["approved"])
    schema, validator = validator_for(frame, features)
    compiled = fastpath.compile_model(pipe)
    assert compiled is not None
    assert fastpath.verify(compiled, validator, schema) is None
    rows = rows_of(messy_frame(200, seed=11), features)
    rows += [{**rows[0], "city": "atlantis"}, {k: None for k in features}]
    assert_same_scores(pipe, compiled, validator, rows)


def test_regression_pipelines_compile_too():
    frame = loan_frame(300, seed=2, task="regression")
    pipe = fitted_pipeline(frame, "amount", "regression")
    schema, validator = validator_for(frame, FEATURES)
    compiled = fastpath.compile_model(pipe)
    assert compiled is not None and not hasattr(compiled, "predict_proba")
    assert fastpath.verify(compiled, validator, schema) is None
    for row in rows_of(loan_frame(50, seed=5, task="regression"), FEATURES):
        columns, _ = validator.validate([row])
        assert pipe.predict(validator.frame(columns)) == compiled.predict(validator.arrays(columns))


def test_verification_catches_a_compiled_path_that_differs():
    """The proof is not a formality: another fit's numbers behind the same shape are refused."""
    frame = loan_frame(300, seed=1)
    schema, validator = validator_for(frame, FEATURES)
    pipe_a = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", FEATURES[:3]), ("cat", OneHotEncoder(), ["color"])])),
            ("model", Ridge()),
        ]
    ).fit(frame[FEATURES], frame["score"])
    compiled = fastpath.compile_model(pipe_a)
    assert fastpath.verify(compiled, validator, schema) is None
    # Same steps, but categories learnt from other data: the encoding differs.
    other = frame.assign(color=frame["color"].map({"red": "red", "green": "green", "blue": "red"}))
    pipe_b = Pipeline(
        [
            ("pre", ColumnTransformer([("num", "passthrough", FEATURES[:3]), ("cat", OneHotEncoder(), ["color"])])),
            ("model", Ridge()),
        ]
    ).fit(other[FEATURES], other["score"])
    impostor = fastpath.CompiledModel(pipe_b, compiled.names, compiled.transform_columns)
    assert fastpath.verify(impostor, validator, schema) is not None


@pytest.mark.parametrize(
    "pre",
    [
        ColumnTransformer([("poly", PolynomialFeatures(), ["age", "income"])]),
        ColumnTransformer([("dates", DateParts(), ["age"])]),
    ],
    ids=["polynomial", "custom"],
)
def test_steps_it_does_not_know_leave_the_pipeline_as_it_is(pre):
    frame = loan_frame(200, seed=1)
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(frame[FEATURES], frame["approved"])
    assert fastpath.compile_model(pipe) is None


@pytest.mark.django_db
def test_the_api_answers_the_same_with_and_without_the_compiled_path(team, deployment):
    from rest_framework.test import APIClient

    deployment.unknown_category_policy = "allow"
    deployment.save()
    _, clear = api_key_create(deployment=deployment, actor=team.editor, name="app")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {clear}")
    instances = [*rows_of(loan_frame(20, seed=4), FEATURES), {**rows_of(loan_frame(1), FEATURES)[0], "color": "teal"}]
    url = f"/api/v1/deployments/{deployment.pk}/predict/"
    answers = {}
    for compiled in (True, False):
        with override_settings(SERVING_COMPILED=compiled):
            r = client.post(url, {"instances": instances}, format="json")
            assert r.status_code == 200, r.content
            answers[compiled] = [
                (p["prediction"], p["confidence"], p["probabilities"]) for p in r.json()["predictions"]
            ]
    assert answers[True] == answers[False]
    version = deployment.model_version
    assert fastpath._compiled[(version.pk, version.sha256)] is not None  # the compiled path did answer


def test_many_rows_take_the_vectorised_lookups_with_the_same_result():
    """Batch chunks: text categories through Arrow, numeric ones through pandas, missing and unseen values."""
    frame = messy_frame(800, seed=4)
    features = [*FEATURES, "city"]
    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["income", "score"]),
            ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["color", "city"]),
            ("ints", OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=10), ["age"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=500))])
    pipe.fit(frame[features].fillna({"income": 0}), frame["approved"])
    schema, validator = validator_for(frame, features)
    compiled = fastpath.compile_model(pipe)
    assert compiled is not None and fastpath.verify(compiled, validator, schema) is None
    rows = rows_of(messy_frame(3 * fastpath.VECTOR_ROWS, seed=12), features)
    for k, row in enumerate(rows):
        row["income"] = row["income"] if row["income"] is not None else 1.0
        if k % 9 == 0:
            row["city"] = "atlantis"  # unseen
        if k % 13 == 0:
            row["age"] = 999  # unseen number
    columns, errors = validator.validate(rows)
    assert not errors
    assert np.array_equal(
        pipe.predict_proba(validator.frame(columns)), compiled.predict_proba(validator.arrays(columns))
    )


@pytest.mark.parametrize("compiled", [True, False])
def test_a_missing_category_is_encoded_alike_alone_or_among_other_rows(compiled):
    """Trained on data with missing colours (NaN, as read from Parquet): a null colour gets the
    same probabilities whether the request holds it alone or with other rows."""
    frame = messy_frame(600, seed=6)
    frame["color"] = frame["color"].astype("str")  # the platform's training frames: NaN for missing
    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["score"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["color"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression())]).fit(frame[FEATURES], frame["approved"])
    schema, validator = validator_for(frame, FEATURES)
    model = fastpath.compile_model(pipe) if compiled else pipe
    if compiled:
        assert model is not None and fastpath.verify(model, validator, schema) is None

    def proba(rows):
        columns, errors = validator.validate(rows)
        assert not errors
        return model.predict_proba(validator.arrays(columns) if compiled else validator.frame(columns))

    null_row = {**rows_of(loan_frame(1), FEATURES)[0], "color": None}
    alone = proba([null_row])[0]
    among = proba([null_row, {**null_row, "color": "red"}])[0]
    assert np.array_equal(alone, among)
    assert not np.array_equal(alone, proba([{**null_row, "color": "red"}])[0])  # missing is not "red"


@pytest.mark.parametrize(
    "numeric",
    [
        MinMaxScaler(clip=True),
        RobustScaler(),
        StandardScaler(with_mean=False),
        Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", RobustScaler(with_centering=False))]),
    ],
    ids=["minmax-clip", "robust", "standard-no-mean", "impute-robust"],
)
def test_every_numeric_step_compiles_exactly(numeric):
    frame = messy_frame(400, seed=8)
    pre = ColumnTransformer(
        [
            ("num", numeric, ["age", "income", "score"]),
            ("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["city"]),
        ]
    )
    features = [*FEATURES, "city"]
    data = frame if isinstance(numeric, Pipeline) else frame.fillna({"income": 0.0})
    pipe = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=300))]).fit(data[features], data["approved"])
    schema, validator = validator_for(data, features)
    compiled = fastpath.compile_model(pipe)
    assert compiled is not None and fastpath.verify(compiled, validator, schema) is None
    rows = rows_of(messy_frame(150, seed=13), features)
    if not isinstance(numeric, Pipeline):
        rows = [{**r, "income": r["income"] if r["income"] is not None else 5.0} for r in rows]
    rows += [{**rows[0], "income": 10**9, "city": "atlantis"}]  # outside the range (clip), unseen
    assert_same_scores(pipe, compiled, validator, rows)
