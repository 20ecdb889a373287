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
    "date_parts": '{"op": "date_parts", "columns": ["signup"], "parts": ["year", "month", "dayofweek"]}',
    "ratio": '{"op": "ratio", "numerator": "debt", "denominator": "income", "name": "debt_ratio"}',
    "age": '{"op": "age", "column": "birth_date", "name": "age"}',
    "uppercase_ratio": '{"op": "uppercase_ratio", "column": "message", "name": "shouting"}',
    "tfidf": '{"op": "tfidf", "column": "message", "max_features": 200}',
    "pca": '{"op": "pca", "n_components": 5}',
    "select_k_best": '{"op": "select_k_best", "k": 10}',
}


@dataclass
class _ColumnSpec:
    kind: str
    impute: str | None = None
    fill_value: Any = None
    encode: str = "onehot"
    scale: str = "standard"
    parts: tuple[str, ...] = ("year", "month", "day", "dayofweek")
    tfidf: int | None = None


def _columns_field(step: dict, i: int, available: list[str], target: str, *, key: str = "columns") -> list[str]:
    cols = step.get(key)
    if cols is None:
        return []
    if isinstance(cols, str):
        cols = [cols]
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise RecipeError("Must be a list of column names.", step=i, field=f"steps[{i}].{key}")
    for c in cols:
        if c == target:
            raise RecipeError(
                f"{c!r} is the target; a recipe only prepares features.", step=i, field=f"steps[{i}].{key}"
            )
        if c not in available:
            raise RecipeError(f"Step {i + 1} ({step['op']}): no column named {c!r}.", step=i, field=f"steps[{i}].{key}")
    return cols


def _one_column(step: dict, i: int, available: list[str], target: str, key: str = "column") -> str:
    value = step.get(key)
    if not isinstance(value, str) or not value:
        raise RecipeError(f"Step {i + 1} ({step['op']}) needs {key!r}.", step=i, field=f"steps[{i}].{key}")
    _columns_field({**step, key: [value]}, i, available, target, key=key)
    return value


def _choice(step: dict, i: int, key: str, options: tuple[str, ...], default: str) -> str:
    value = step.get(key, default)
    if value not in options:
        raise RecipeError(f"Choose one of {', '.join(options)}.", step=i, field=f"steps[{i}].{key}")
    return value


def _positive_int(step: dict, i: int, key: str, default: int | None = None, maximum: int = 100_000) -> int:
    value = step.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise RecipeError(f"Must be a whole number from 1 to {maximum}.", step=i, field=f"steps[{i}].{key}")
    return value


def _new_name(step: dict, i: int, available: list[str], default: str) -> str:
    name = step.get("name") or default
    if not isinstance(name, str) or len(name) > 200:
        raise RecipeError("Must be a column name.", step=i, field=f"steps[{i}].name")
    if name in available:
        raise RecipeError(f"A column named {name!r} already exists.", step=i, field=f"steps[{i}].name")
    return name


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


def _row_filter(dedup: bool, outlier_specs: list[tuple[list[str], str, float]]) -> RowFilter:
    def apply(X: pd.DataFrame, y: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        keep = pd.Series(True, index=X.index)
        if dedup:
            both = X.copy()
            both["__target__"] = y.to_numpy() if y is not None else None
            keep &= ~both.duplicated()
        for columns, method, threshold in outlier_specs:
            for c in columns:
                v = pd.to_numeric(X[c], errors="coerce")
                if method == "iqr":
                    q1, q3 = v.quantile(0.25), v.quantile(0.75)
                    iqr = q3 - q1
                    bad = (v < q1 - threshold * iqr) | (v > q3 + threshold * iqr)
                else:
                    std = v.std()
                    bad = ((v - v.mean()).abs() > threshold * std) if std and std > 0 else v.isna() & False
                keep &= ~bad.fillna(False)
        if keep.all():
            return X, y
        return X[keep.to_numpy()], (y[keep.to_numpy()] if y is not None else y)

    return apply


def _column_pipeline(spec: _ColumnSpec) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import MinMaxScaler, OrdinalEncoder, RobustScaler

    from datasets.transformers import TextColumn

    if spec.tfidf:
        return Pipeline([("text", TextColumn()), ("tfidf", TfidfVectorizer(max_features=spec.tfidf))])
    steps: list[tuple[str, Any]] = []
    if spec.kind == CATEGORICAL:
        steps.append(("as_text", ToString()))
        strategy = spec.impute or "most_frequent"
        if strategy in ("mean", "median"):
            strategy = "most_frequent"
        steps.append(
            (
                "impute",
                SimpleImputer(strategy=strategy, fill_value=str(spec.fill_value) if strategy == "constant" else None),
            )
        )
        if spec.encode == "ordinal":
            steps.append(
                (
                    "ordinal",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
                )
            )
        else:
            steps.append(
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=50, sparse_output=False
                    ),
                )
            )
        return Pipeline(steps)
    if spec.kind == DATETIME:
        steps.append(("parts", DateParts(parts=tuple(spec.parts))))
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
        return Pipeline(steps)
    if spec.kind == BOOLEAN:
        steps.append(("as_float", ToFloat()))
    strategy = spec.impute or ("most_frequent" if spec.kind == BOOLEAN else "median")
    fill = spec.fill_value if strategy == "constant" else None
    if strategy == "constant":
        try:
            fill = float(fill)
        except (TypeError, ValueError):
            fill = 0.0
    if spec.kind == NUMERIC:
        steps.append(("as_float", ToFloat()))
    steps.append(("impute", SimpleImputer(strategy=strategy, fill_value=fill, keep_empty_features=True)))
    if spec.kind == NUMERIC and spec.scale != "none":
        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[spec.scale]()
        steps.append(("scale", scaler))
    return Pipeline(steps)


def compile_recipe(steps: list[dict] | None, *, frame: pd.DataFrame, target: str) -> RecipePlan:
    """Compile recipe steps against a sample of the training frame (for column checks).

    Raises RecipeError(message, step=i, field="steps[i].<key>") naming the first problem.
    """
    if not steps:
        return auto_plan(frame, target=target)
    from datetime import date

    from sklearn.decomposition import PCA
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression

    from datasets.transformers import AgeFromDate, CategoryCleaner, ColumnDropper, Ratio, UppercaseRatio

    steps = validate_steps(steps)
    features = frame.drop(columns=[target], errors="ignore")
    kinds = column_kinds(features)
    available = list(features.columns)
    derive: list[tuple[str, Any]] = []
    sources: set[str] = set()
    dropped: list[str] = []
    specs: dict[str, _ColumnSpec] = {}
    dedup = False
    outliers: list[tuple[list[str], str, float]] = []
    tail: list[tuple[str, Any]] = []
    notes: list[str] = []

    def spec(c: str) -> _ColumnSpec:
        if c not in specs:
            specs[c] = _ColumnSpec(kind=kinds[c])
        return specs[c]

    for i, step in enumerate(steps):
        op = step["op"]
        if tail and op not in ("pca", "select_k_best"):
            raise RecipeError(
                "pca and select_k_best work on the prepared matrix: put them after every column step.",
                step=i,
                field=f"steps[{i}].op",
            )
        if op == "drop_columns":
            cols = _columns_field(step, i, available, target)
            if not cols:
                raise RecipeError("Name at least one column.", step=i, field=f"steps[{i}].columns")
            for c in cols:
                available.remove(c)
                dropped.append(c)
        elif op == "impute":
            strategy = _choice(step, i, "strategy", IMPUTE, "median")
            cols = _columns_field(step, i, available, target) or [
                c for c in available if kinds[c] in (NUMERIC, CATEGORICAL, BOOLEAN)
            ]
            if strategy == "constant" and "value" not in step:
                raise RecipeError("The constant strategy needs a 'value'.", step=i, field=f"steps[{i}].value")
            for c in cols:
                if strategy in ("mean", "median") and kinds[c] not in (NUMERIC, BOOLEAN):
                    raise RecipeError(
                        f"{c!r} is {kinds[c]}; {strategy} needs numbers (use most_frequent or constant).",
                        step=i,
                        field=f"steps[{i}].strategy",
                    )
                spec(c).impute, spec(c).fill_value = strategy, step.get("value")
        elif op == "clean_categories":
            cols = _columns_field(step, i, available, target) or [c for c in available if kinds[c] == CATEGORICAL]
            for c in cols:
                if kinds[c] not in (CATEGORICAL, TEXT, ID_LIKE):
                    raise RecipeError(
                        f"{c!r} is {kinds[c]}; clean_categories works on text categories.",
                        step=i,
                        field=f"steps[{i}].columns",
                    )
            merge = step.get("merge_similar", True)
            if not isinstance(merge, bool):
                raise RecipeError("Must be true or false.", step=i, field=f"steps[{i}].merge_similar")
            if cols:
                derive.append((f"clean_{i}", CategoryCleaner(columns=tuple(cols), merge_similar=merge)))
                sources.update(c for c in cols if c in features.columns)
                notes.append(
                    "Categories of "
                    + ", ".join(repr(c) for c in cols)
                    + " are cleaned (case, spaces"
                    + (", near-identical spellings" if merge else "")
                    + "), learned on training rows."
                )
        elif op == "drop_duplicates":
            dedup = True
        elif op == "remove_outliers":
            method = _choice(step, i, "method", OUTLIERS, "iqr")
            threshold = step.get("threshold", 1.5 if method == "iqr" else 3.0)
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 100:
                raise RecipeError("Must be a positive number.", step=i, field=f"steps[{i}].threshold")
            cols = _columns_field(step, i, available, target) or [c for c in available if kinds[c] == NUMERIC]
            for c in cols:
                if kinds[c] != NUMERIC:
                    raise RecipeError(f"{c!r} is {kinds[c]}, not numeric.", step=i, field=f"steps[{i}].columns")
            sources.update(c for c in cols if c in features.columns)
            outliers.append((cols, method, float(threshold)))
        elif op == "encode":
            method = _choice(step, i, "method", ENCODE, "onehot")
            cols = _columns_field(step, i, available, target) or [c for c in available if kinds[c] == CATEGORICAL]
            for c in cols:
                if kinds[c] in (TEXT, DATETIME):
                    raise RecipeError(
                        f"{c!r} is {kinds[c]}; it cannot be encoded as categories.", step=i, field=f"steps[{i}].columns"
                    )
                kinds[c] = CATEGORICAL
                spec(c).kind = CATEGORICAL
                spec(c).encode = method
        elif op == "scale":
            method = _choice(step, i, "method", SCALE, "standard")
            cols = _columns_field(step, i, available, target) or [c for c in available if kinds[c] == NUMERIC]
            for c in cols:
                if kinds[c] != NUMERIC:
                    raise RecipeError(
                        f"{c!r} is {kinds[c]}, not numeric: it cannot be scaled.", step=i, field=f"steps[{i}].columns"
                    )
                spec(c).scale = method
        elif op == "date_parts":
            parts = step.get("parts", ["year", "month", "day", "dayofweek"])
            if not isinstance(parts, list) or not parts or any(p not in DATE_PARTS for p in parts):
                raise RecipeError(
                    f"Parts must be a list of {', '.join(DATE_PARTS)}.", step=i, field=f"steps[{i}].parts"
                )
            cols = _columns_field(step, i, available, target) or [c for c in available if kinds[c] == DATETIME]
            for c in cols:
                if kinds[c] not in (DATETIME, CATEGORICAL, TEXT):
                    raise RecipeError(f"{c!r} is {kinds[c]}, not a date.", step=i, field=f"steps[{i}].columns")
                kinds[c] = DATETIME
                spec(c).kind = DATETIME
                spec(c).parts = tuple(parts)
        elif op == "ratio":
            num = _one_column(step, i, available, target, "numerator")
            den = _one_column(step, i, available, target, "denominator")
            for c in (num, den):
                if kinds[c] != NUMERIC:
                    raise RecipeError(f"{c!r} is {kinds[c]}, not numeric.", step=i, field=f"steps[{i}].numerator")
            name = _new_name(step, i, available, f"{num}_per_{den}")
            derive.append((f"ratio_{i}", Ratio(numerator=num, denominator=den, name=name)))
            sources.update({num, den} & set(features.columns))
            available.append(name)
            kinds[name] = NUMERIC
        elif op == "age":
            col = _one_column(step, i, available, target)
            name = _new_name(step, i, available, f"{col}_age")
            reference = step.get("reference") or date.today().isoformat()
            try:
                pd.Timestamp(reference)
            except (ValueError, TypeError):
                raise RecipeError("Must be an ISO date.", step=i, field=f"steps[{i}].reference") from None
            derive.append((f"age_{i}", AgeFromDate(column=col, name=name, reference=str(reference))))
            sources.update({col} & set(features.columns))
            available.append(name)
            kinds[name] = NUMERIC
            notes.append(f"Age of {col!r} computed at {reference} (fixed with the model).")
        elif op == "uppercase_ratio":
            col = _one_column(step, i, available, target)
            name = _new_name(step, i, available, f"{col}_uppercase_ratio")
            derive.append((f"upper_{i}", UppercaseRatio(column=col, name=name)))
            sources.update({col} & set(features.columns))
            available.append(name)
            kinds[name] = NUMERIC
        elif op == "tfidf":
            col = _one_column(step, i, available, target)
            spec(col).kind = TEXT
            kinds[col] = TEXT
            spec(col).tfidf = _positive_int(step, i, "max_features", 200, maximum=20_000)
        elif op == "pca":
            tail.append(
                (f"pca_{i}", PCA(n_components=_positive_int(step, i, "n_components", maximum=10_000), random_state=0))
            )
        elif op == "select_k_best":
            k = _positive_int(step, i, "k", maximum=100_000)
            y = frame[target] if target in frame.columns else None
            classification = y is not None and (not pd.api.types.is_numeric_dtype(y) or y.nunique() <= 20)
            tail.append((f"select_{i}", SelectKBest(score_func=f_classif if classification else f_regression, k=k)))

    used: list[str] = []
    groups: dict[tuple, list[str]] = {}
    for c in available:
        s = specs.get(c) or _ColumnSpec(kind=kinds[c])
        if s.kind == ID_LIKE or (s.kind == TEXT and not s.tfidf):
            notes.append(f"Dropped {c!r} ({s.kind}; use tfidf for text, encode to keep an id-like code).")
            continue
        if s.tfidf:
            groups[("tfidf", c)] = [c]  # TfidfVectorizer takes one column
        else:
            key = (s.kind, s.impute, str(s.fill_value), s.encode, s.scale, s.parts)
            groups.setdefault(key, []).append(c)
        used.append(c)
    if not used:
        raise RecipeError("The recipe leaves no feature columns.", field="steps")
    transformers = []
    for n, (key, cols) in enumerate(groups.items()):
        s = specs.get(cols[0]) or _ColumnSpec(kind=kinds[cols[0]])
        transformers.append((f"{key[0]}_{n}", _column_pipeline(s), cols))
    # Derived columns are computed first (they may read columns dropped afterwards), then dropped
    # columns leave, then each column group is prepared, then whole-matrix steps.
    pipeline_steps: list[tuple[str, Any]] = list(derive)
    if dropped:
        pipeline_steps.append(("drop", ColumnDropper(columns=tuple(dropped))))
    pipeline_steps.append(("columns", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0)))
    pipeline_steps.extend(tail)
    raw_needed = [c for c in features.columns if c in set(used) | sources]
    if dropped:
        notes.append("Dropped " + ", ".join(repr(c) for c in dropped) + ".")
    if dedup:
        notes.append("Duplicate rows are removed from training data only.")
    if outliers:
        notes.append("Outliers are removed from training data only; inference sees every row.")
    return RecipePlan(Pipeline(pipeline_steps), raw_needed, kinds, _row_filter(dedup, outliers), notes)


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
