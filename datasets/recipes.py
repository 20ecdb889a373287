"""Recipes: declarative preparation steps compiled into a scikit-learn pipeline.

`compile_recipe` returns a RecipePlan:
- `preprocessor`: an unfitted transformer from the raw feature columns to a numeric matrix. It
  is fitted inside each cross-validation fold and saved *with* the model, so inference
  preprocesses exactly as training did;
- `row_filter(X, y)`: row-level cleaning (drop duplicates, outliers) applied to training data
  only, never at inference;
- `feature_columns`: the raw columns the model needs at prediction time.

An empty recipe means "auto": impute + scale numerics, impute + one-hot categoricals, date
parts for datetimes, drop id-like and free-text columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, ID_LIKE, NUMERIC, TEXT, column_kinds
from datasets.transformers import DateParts, ToFloat, ToString


class RecipeError(ValueError):
    def __init__(self, message: str, step: int | None = None, field: str = "recipe"):
        super().__init__(message)
        self.step = step
        self.field = field


RowFilter = Callable[[pd.DataFrame, pd.Series], "tuple[pd.DataFrame, pd.Series]"]


@dataclass
class RecipePlan:
    preprocessor: Any
    feature_columns: list[str]
    kinds: dict[str, str]
    row_filter: RowFilter = field(default=lambda X, y: (X, y))
    notes: list[str] = field(default_factory=list)


def _numeric_pipeline() -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


def _categorical_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("as_text", ToString()),
            ("impute", SimpleImputer(strategy="most_frequent")),
            (
                "onehot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=50, sparse_output=False
                ),
            ),
        ]
    )


def auto_plan(frame: pd.DataFrame, *, target: str) -> RecipePlan:
    features = frame.drop(columns=[target], errors="ignore")
    kinds = column_kinds(features)
    groups: dict[str, list[str]] = {k: [c for c, kk in kinds.items() if kk == k] for k in set(kinds.values())}
    transformers = []
    if groups.get(NUMERIC):
        transformers.append(("numeric", _numeric_pipeline(), groups[NUMERIC]))
    if groups.get(BOOLEAN):
        transformers.append(
            (
                "boolean",
                Pipeline([("as_float", ToFloat()), ("impute", SimpleImputer(strategy="most_frequent"))]),
                groups[BOOLEAN],
            )
        )
    if groups.get(CATEGORICAL):
        transformers.append(("categorical", _categorical_pipeline(), groups[CATEGORICAL]))
    if groups.get(DATETIME):
        transformers.append(
            (
                "dates",
                Pipeline([("parts", DateParts()), ("impute", SimpleImputer(strategy="median"))]),
                groups[DATETIME],
            )
        )
    dropped = groups.get(ID_LIKE, []) + groups.get(TEXT, [])
    used = [c for c in features.columns if c not in dropped]
    if not transformers:
        raise RecipeError("No usable feature columns: every column is an id or free text.")
    notes = [f"Dropped {c!r} ({kinds[c]})" for c in dropped]
    return RecipePlan(ColumnTransformer(transformers, remainder="drop"), used, kinds, notes=notes)


def compile_recipe(steps: list[dict] | None, *, frame: pd.DataFrame, target: str) -> RecipePlan:
    """Compile recipe steps against a sample of the training frame (for column checks)."""
    if not steps:
        return auto_plan(frame, target=target)
    raise RecipeError("Recipe steps are not supported yet.")
