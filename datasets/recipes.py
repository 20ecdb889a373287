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
    columns = ColumnTransformer(transformers, remainder="drop")
    messy = messy_category_columns(features, [c for c in groups.get(CATEGORICAL, [])])
    if messy:
        # The same spelling clean-up the automatic recipe shows, so an empty recipe is not worse.
        from datasets.transformers import CategoryCleaner

        notes.append("Categories of " + ", ".join(repr(c) for c in messy) + " are cleaned (case, spaces, spellings).")
        cleaner = CategoryCleaner(columns=tuple(messy))
        return RecipePlan(Pipeline([("clean", cleaner), ("columns", columns)]), used, kinds, notes=notes)
    return RecipePlan(columns, used, kinds, notes=notes)


def messy_category_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Columns whose values have several spellings of one category ("South", "south ")."""
    from datasets.categories import learn

    return [c for c in columns if c in frame.columns and learn(frame[c]).changes]


# --- declarative steps ---------------------------------------------------------------------------

OPS = (
    "drop_columns",
    "clean_categories",
    "impute",
    "drop_duplicates",
    "remove_outliers",
    "encode",
    "scale",
    "date_parts",
    "ratio",
    "age",
    "uppercase_ratio",
    "tfidf",
    "pca",
    "select_k_best",
)
IMPUTE = ("mean", "median", "most_frequent", "constant")
ENCODE = ("onehot", "ordinal")
SCALE = ("standard", "minmax", "robust", "none")
OUTLIERS = ("iqr", "zscore")
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "quarter", "hour", "minute")

# JSON schema of one step, shown to users (UI form help, API docs).
STEP_REFERENCE: dict[str, str] = {
    "drop_columns": '{"op": "drop_columns", "columns": ["id", "notes"]}',
    "clean_categories": '{"op": "clean_categories", "columns": ["region"], "merge_similar": true}  (case, spaces, Unicode; rare near-identical spellings merged into a frequent one when merge_similar)',
    "impute": '{"op": "impute", "columns": ["age"], "strategy": "median"}  (mean, median, most_frequent, constant + "value")',
    "drop_duplicates": '{"op": "drop_duplicates"}  (training rows only)',
    "remove_outliers": '{"op": "remove_outliers", "columns": ["income"], "method": "iqr", "threshold": 1.5}  (or zscore, 3; training rows only)',
    "encode": '{"op": "encode", "columns": ["city"], "method": "onehot"}  (or ordinal; unknown categories at inference are ignored)',
    "scale": '{"op": "scale", "columns": ["income"], "method": "standard"}  (minmax, robust, none)',
    "date_parts": '{"op": "date_parts", "columns": ["signup"], "parts": ["year", "month", "dayofweek"]}  (+ "format": "%d/%m/%Y" when the recognised one is wrong; epoch_s / epoch_ms for Unix times)',
    "ratio": '{"op": "ratio", "numerator": "debt", "denominator": "income", "name": "debt_ratio"}',
    "age": '{"op": "age", "column": "birth_date", "name": "age"}',
    "uppercase_ratio": '{"op": "uppercase_ratio", "column": "message", "name": "shouting"}',
    "tfidf": '{"op": "tfidf", "column": "message", "max_features": 200}',
    "pca": '{"op": "pca", "n_components": 5}',
    "select_k_best": '{"op": "select_k_best", "k": 10}',
}


def validate_steps(steps: Any) -> list[dict]:
    if not isinstance(steps, list):
        raise RecipeError("A recipe is a list of steps.", field="steps")
    if len(steps) > 200:
        raise RecipeError("At most 200 steps.", field="steps")
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise RecipeError(f"Step {i + 1} must be an object.", step=i, field=f"steps[{i}]")
        if step.get("op") not in OPS:
            raise RecipeError(
                f"Step {i + 1}: unknown op {step.get('op')!r}; choose one of {', '.join(OPS)}.",
                step=i,
                field=f"steps[{i}].op",
            )
    return steps


def compile_recipe(steps: list[dict] | None, *, frame: pd.DataFrame, target: str) -> RecipePlan:
    """Compile recipe steps against a sample of the training frame (for column checks).

    An empty recipe is the automatic plan. Raises RecipeError(message, step=i,
    field="steps[i].<key>") naming the first problem. The compiler is datasets/recipe_compile.py.
    """
    if not steps:
        return auto_plan(frame, target=target)
    from datasets.recipe_compile import compile_steps

    return compile_steps(validate_steps(steps), frame=frame, target=target)


def feature_names(preprocessor: Any) -> list[str]:
    """Output column names of a *fitted* preprocessor."""
    names = None
    steps = preprocessor.steps if isinstance(preprocessor, Pipeline) else [("columns", preprocessor)]
    for _name, step in steps:
        if isinstance(step, ColumnTransformer):
            names = list(step.get_feature_names_out())
        elif names is not None and hasattr(step, "get_feature_names_out"):
            names = list(step.get_feature_names_out(names))
    return [str(n) for n in (names or [])]


def preview(steps: list[dict] | None, *, frame: pd.DataFrame, target: str, rows: int = 20) -> dict:
    """The recipe fitted on a sample and applied to it: before / after tables and notes."""
    plan = compile_recipe(steps, frame=frame, target=target)
    X = frame.drop(columns=[target], errors="ignore")
    y = frame[target] if target in frame.columns else pd.Series([None] * len(frame))
    Xf, yf = plan.row_filter(X, y)
    if len(Xf) == 0:
        raise RecipeError("The recipe's row filters remove every row.", field="steps")
    try:
        if any(name.startswith("select_") for name, _ in getattr(plan.preprocessor, "steps", [])):
            if target not in frame.columns:
                raise RecipeError("select_k_best needs a target column.", field="target")
            matrix = plan.preprocessor.fit(Xf, yf).transform(Xf)
        else:
            matrix = plan.preprocessor.fit_transform(Xf)
    except RecipeError:
        raise
    except ValueError as exc:
        raise RecipeError(f"The recipe cannot be applied to this data: {exc}", field="steps") from None
    names = feature_names(plan.preprocessor)
    after = pd.DataFrame(matrix[:rows], columns=names if len(names) == matrix.shape[1] else None)
    return {
        "rows_in": len(X),
        "rows_after_row_filters": len(Xf),
        "feature_columns": plan.feature_columns,
        "output_columns": [str(c) for c in after.columns],
        "before": X.head(rows),
        "after": after,
        "notes": plan.notes,
        "category_mappings": category_mappings(plan.preprocessor),
    }


def category_mappings(preprocessor: Any) -> dict[str, list[dict]]:
    """What the fitted clean_categories steps merge, per column (shown next to the step)."""
    from datasets.transformers import CategoryCleaner

    out: dict[str, list[dict]] = {}
    for _name, step in getattr(preprocessor, "steps", []):
        if isinstance(step, CategoryCleaner) and hasattr(step, "changes_"):
            out.update(step.changes_)
    return out
