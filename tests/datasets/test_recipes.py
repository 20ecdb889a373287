"""Recipes compile to a scikit-learn Pipeline that travels with the model (no database needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from datasets.recipes import RecipeError, compile_recipe
from mlplatform.artifacts import model_dumps, model_loads


def frame(n=240, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame(
        {
            "id": np.arange(n),
            "income": rng.exponential(3, n),
            "debt": rng.exponential(1, n),
            "age": rng.normal(40, 10, n),
            "city": rng.choice(["Paris", "Lyon", "Nice"], n),
            "grade": rng.choice(["A", "B", "C"], n),
            "birth": pd.date_range("1960-01-01", periods=n, freq="30D").strftime("%Y-%m-%d"),
            "signup": pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "note": [f"Customer NOTE number {i} says HELLO world again" for i in range(n)],
        }
    )
    f.loc[::9, "age"] = np.nan
    f.loc[::13, "city"] = None
    f["y"] = np.where(f["income"] + rng.normal(0, 1, n) > 3, "good", "bad")
    return f


EVERY_STEP = [
    {"op": "ratio", "numerator": "debt", "denominator": "income", "name": "debt_ratio"},
    {"op": "age", "column": "birth", "name": "age_years", "reference": "2025-06-01"},
    {"op": "uppercase_ratio", "column": "note", "name": "shouting"},
    {"op": "drop_columns", "columns": ["id", "birth"]},
    {"op": "impute", "columns": ["age"], "strategy": "mean"},
    {"op": "impute", "columns": ["city"], "strategy": "most_frequent"},
    {"op": "drop_duplicates"},
    {"op": "remove_outliers", "columns": ["income"], "method": "zscore", "threshold": 3},
    {"op": "encode", "columns": ["city"], "method": "onehot"},
    {"op": "encode", "columns": ["grade"], "method": "ordinal"},
    {"op": "scale", "columns": ["income"], "method": "robust"},
    {"op": "scale", "columns": ["debt"], "method": "minmax"},
    {"op": "date_parts", "columns": ["signup"], "parts": ["year", "month", "dayofweek"]},
    {"op": "tfidf", "column": "note", "max_features": 10},
    {"op": "pca", "n_components": 8},
    {"op": "select_k_best", "k": 5},
]


def test_recipe_with_every_step_round_trips_with_the_model():
    f = frame()
    plan = compile_recipe(EVERY_STEP, frame=f, target="y")
    X, y = f.drop(columns="y"), f["y"]
    Xf, yf = plan.row_filter(X, y)
    model = Pipeline([("prep", plan.preprocessor), ("model", LogisticRegression(max_iter=500))]).fit(Xf, yf)
    loaded = model_loads(model_dumps(model))
    # Inference on raw rows (with an unseen city and missing values) preprocesses exactly as training did.
    new = X.head(20).copy()
    new.loc[new.index[0], "city"] = "Marseille"
    new.loc[new.index[1], "age"] = np.nan
    assert (loaded.predict(new) == model.predict(new)).all()
    np.testing.assert_allclose(loaded.predict_proba(new), model.predict_proba(new))
    assert set(plan.feature_columns) >= {"income", "debt", "birth", "note", "signup", "city", "grade"}
    assert "id" not in plan.feature_columns


def test_row_filter_removes_duplicates_and_outliers_from_training_only():
    f = frame()
    f = pd.concat([f, f.head(10)], ignore_index=True)
    f.loc[5, "income"] = 1e6
    plan = compile_recipe(
        [{"op": "drop_duplicates"}, {"op": "remove_outliers", "columns": ["income"], "method": "iqr"}],
        frame=f,
        target="y",
    )
    X, y = f.drop(columns="y"), f["y"]
    Xf, yf = plan.row_filter(X, y)
    assert len(Xf) == len(yf) < len(X) - 10
    assert 1e6 not in Xf["income"].to_numpy()
    fitted = plan.preprocessor.fit(Xf, yf)
    assert fitted.transform(X).shape[0] == len(X)  # inference keeps every row


def test_preprocessor_is_fitted_per_fold_without_touching_other_folds():
    data = load_breast_cancer(as_frame=True)
    f = data.frame.rename(columns={"target": "y"})
    plan = compile_recipe([{"op": "scale", "method": "standard"}], frame=f, target="y")
    X, y = f.drop(columns="y"), f["y"]
    for train, _val in StratifiedKFold(3, shuffle=True, random_state=0).split(X, y):
        pipe = Pipeline([("prep", plan.preprocessor), ("m", LogisticRegression(max_iter=1000))])
        pipe.fit(X.iloc[train], y.iloc[train])
        scaler_mean = pipe.named_steps["prep"].named_steps["columns"].transformers_[0][1].named_steps["scale"].mean_
        np.testing.assert_allclose(scaler_mean, X.iloc[train][plan.feature_columns].mean().to_numpy(), rtol=1e-6)


def test_empty_recipe_is_the_auto_plan():
    plan = compile_recipe([], frame=frame(), target="y")
    assert "id" not in plan.feature_columns and "note" not in plan.feature_columns


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"op": "drop_columns", "columns": ["nope"]}], "steps[0].columns"),
        ([{"op": "impute", "columns": ["city"], "strategy": "mean"}], "steps[0].strategy"),
        ([{"op": "impute", "columns": ["age"], "strategy": "constant"}], "steps[0].value"),
        ([{"op": "pca", "n_components": 2}, {"op": "scale"}], "steps[1].op"),
        ([{"op": "drop_columns", "columns": ["id"]}, {"op": "scale", "columns": ["id"]}], "steps[1].columns"),
        ([{"op": "date_parts", "columns": ["signup"], "parts": ["century"]}], "steps[0].parts"),
        ([{"op": "ratio", "numerator": "income", "denominator": "debt", "name": "age"}], "steps[0].name"),
        ([{"op": "tfidf", "column": "note", "max_features": -1}], "steps[0].max_features"),
        ([{"op": "drop_columns", "columns": ["y"]}], "steps[0].columns"),
        (["drop"], "steps[0]"),
    ],
)
def test_invalid_steps_name_the_step_and_field(steps, field):
    with pytest.raises(RecipeError) as info:
        compile_recipe(steps, frame=frame(), target="y")
    assert info.value.field == field


def test_derived_columns_can_be_used_by_later_steps():
    plan = compile_recipe(
        [
            {"op": "ratio", "numerator": "debt", "denominator": "income", "name": "r"},
            {"op": "scale", "columns": ["r"], "method": "minmax"},
        ],
        frame=frame(),
        target="y",
    )
    f = frame()
    out = plan.preprocessor.fit_transform(f.drop(columns="y"))
    assert out.shape[0] == len(f)
