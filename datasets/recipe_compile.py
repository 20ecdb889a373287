"""Recipe steps compiled into a scikit-learn pipeline (`datasets.recipes.compile_recipe`).

One method per op on `_Compiler`, each validating its step against the columns available at
that point (derived columns included) and recording what to build; `build()` assembles the
pipeline: derived columns first (they may read columns dropped afterwards), then dropped
columns leave, then each group of columns is prepared, then whole-matrix steps (PCA, select
k best). Row-level steps become a `row_filter` applied to training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from datasets.dates import EPOCH_MS, EPOCH_S, parse_dates, valid_format
from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, ID_LIKE, NUMERIC, TEXT, column_kinds
from datasets.recipes import DATE_PARTS, ENCODE, IMPUTE, OUTLIERS, SCALE, RecipeError, RecipePlan, RowFilter
from datasets.transformers import ToFloat, ToString


@dataclass
class _ColumnSpec:
    kind: str
    impute: str | None = None
    fill_value: Any = None
    encode: str = "onehot"
    scale: str = "standard"
    parts: tuple[str, ...] = ("year", "month", "day", "dayofweek")
    date_format: str = ""  # "" = the format recognised at fit (datasets.dates)
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


def _date_format_field(step: dict, i: int, cols: list[str], features: pd.DataFrame) -> str:
    """The optional `format` of a date_parts step: a known format that reads the sample's dates."""
    fmt = step.get("format", "")
    if fmt == "":
        return ""
    if not valid_format(fmt):
        raise RecipeError(
            "Must be a strftime format such as %d/%m/%Y or %b-%Y, or one of ISO8601, epoch_s, epoch_ms.",
            step=i,
            field=f"steps[{i}].format",
        )
    for c in cols:
        if c not in features.columns:
            continue  # a derived column: checked when the pipeline is fitted
        values = features[c].dropna()
        if len(values) and parse_dates(values, fmt).notna().mean() < 0.95:
            raise RecipeError(
                f"{fmt!r} does not read the dates of {c!r} (e.g. {str(values.iloc[0])!r}).",
                step=i,
                field=f"steps[{i}].format",
            )
    return fmt


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


def _categorical_steps(spec: _ColumnSpec) -> list[tuple[str, Any]]:
    from sklearn.preprocessing import OrdinalEncoder

    strategy = spec.impute or "most_frequent"
    if strategy in ("mean", "median"):
        strategy = "most_frequent"
    fill = str(spec.fill_value) if strategy == "constant" else None
    steps: list[tuple[str, Any]] = [
        ("as_text", ToString()),
        ("impute", SimpleImputer(strategy=strategy, fill_value=fill)),
    ]
    if spec.encode == "ordinal":
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        return [*steps, ("ordinal", encoder)]
    onehot = OneHotEncoder(
        handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=50, sparse_output=False
    )
    return [*steps, ("onehot", onehot)]


def _column_pipeline(spec: _ColumnSpec) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import MinMaxScaler, RobustScaler

    from datasets.transformers import DateParts, TextColumn

    if spec.tfidf:
        return Pipeline([("text", TextColumn()), ("tfidf", TfidfVectorizer(max_features=spec.tfidf))])
    if spec.kind == CATEGORICAL:
        return Pipeline(_categorical_steps(spec))
    if spec.kind == DATETIME:
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        return Pipeline([("parts", DateParts(parts=tuple(spec.parts), format=spec.date_format)), ("impute", imputer)])
    steps: list[tuple[str, Any]] = []
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


class _Compiler:
    """The state of one compilation: what each step asked for, column by column."""

    def __init__(self, frame: pd.DataFrame, target: str):
        self.frame, self.target = frame, target
        self.features = frame.drop(columns=[target], errors="ignore")
        self.kinds = column_kinds(self.features)
        self.available = list(self.features.columns)
        self.derive: list[tuple[str, Any]] = []
        self.sources: set[str] = set()
        self.dropped: list[str] = []
        self.specs: dict[str, _ColumnSpec] = {}
        self.dedup = False
        self.outliers: list[tuple[list[str], str, float]] = []
        self.tail: list[tuple[str, Any]] = []
        self.notes: list[str] = []

    def spec(self, c: str) -> _ColumnSpec:
        if c not in self.specs:
            self.specs[c] = _ColumnSpec(kind=self.kinds[c])
        return self.specs[c]

    def columns(self, i: int, step: dict, *default_kinds: str) -> list[str]:
        """The step's columns, or by default every available column of these kinds."""
        named = _columns_field(step, i, self.available, self.target)
        return named or [c for c in self.available if self.kinds[c] in default_kinds]

    def require_kinds(self, i: int, cols: list[str], kinds: tuple[str, ...], problem: str) -> None:
        for c in cols:
            if self.kinds[c] not in kinds:
                raise RecipeError(problem.format(c=c, kind=self.kinds[c]), step=i, field=f"steps[{i}].columns")

    def add_derived(self, name: str, transformer: Any, reads: set[str]) -> None:
        self.derive.append((name, transformer))
        self.sources.update(reads & set(self.features.columns))

    def new_column(self, name: str) -> None:
        self.available.append(name)
        self.kinds[name] = NUMERIC

    # --- one method per op ---------------------------------------------------------------------

    def drop_columns(self, i: int, step: dict) -> None:
        cols = _columns_field(step, i, self.available, self.target)
        if not cols:
            raise RecipeError("Name at least one column.", step=i, field=f"steps[{i}].columns")
        for c in cols:
            self.available.remove(c)
            self.dropped.append(c)

    def impute(self, i: int, step: dict) -> None:
        strategy = _choice(step, i, "strategy", IMPUTE, "median")
        cols = self.columns(i, step, NUMERIC, CATEGORICAL, BOOLEAN)
        if strategy == "constant" and "value" not in step:
            raise RecipeError("The constant strategy needs a 'value'.", step=i, field=f"steps[{i}].value")
        for c in cols:
            if strategy in ("mean", "median") and self.kinds[c] not in (NUMERIC, BOOLEAN):
                raise RecipeError(
                    f"{c!r} is {self.kinds[c]}; {strategy} needs numbers (use most_frequent or constant).",
                    step=i,
                    field=f"steps[{i}].strategy",
                )
            self.spec(c).impute, self.spec(c).fill_value = strategy, step.get("value")

    def clean_categories(self, i: int, step: dict) -> None:
        from datasets.transformers import CategoryCleaner

        cols = self.columns(i, step, CATEGORICAL)
        self.require_kinds(
            i, cols, (CATEGORICAL, TEXT, ID_LIKE), "{c!r} is {kind}; clean_categories works on text categories."
        )
        merge = step.get("merge_similar", True)
        if not isinstance(merge, bool):
            raise RecipeError("Must be true or false.", step=i, field=f"steps[{i}].merge_similar")
        if cols:
            self.add_derived(f"clean_{i}", CategoryCleaner(columns=tuple(cols), merge_similar=merge), set(cols))
            what = "case, spaces" + (", near-identical spellings" if merge else "")
            self.notes.append(
                f"Categories of {', '.join(repr(c) for c in cols)} are cleaned ({what}), learned on training rows."
            )

    def drop_duplicates(self, i: int, step: dict) -> None:
        self.dedup = True

    def remove_outliers(self, i: int, step: dict) -> None:
        method = _choice(step, i, "method", OUTLIERS, "iqr")
        threshold = step.get("threshold", 1.5 if method == "iqr" else 3.0)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 100:
            raise RecipeError("Must be a positive number.", step=i, field=f"steps[{i}].threshold")
        cols = self.columns(i, step, NUMERIC)
        self.require_kinds(i, cols, (NUMERIC,), "{c!r} is {kind}, not numeric.")
        self.sources.update(c for c in cols if c in self.features.columns)
        self.outliers.append((cols, method, float(threshold)))

    def encode(self, i: int, step: dict) -> None:
        method = _choice(step, i, "method", ENCODE, "onehot")
        cols = self.columns(i, step, CATEGORICAL)
        for c in cols:
            if self.kinds[c] in (TEXT, DATETIME):
                raise RecipeError(
                    f"{c!r} is {self.kinds[c]}; it cannot be encoded as categories.",
                    step=i,
                    field=f"steps[{i}].columns",
                )
            self.kinds[c] = CATEGORICAL
            self.spec(c).kind = CATEGORICAL
            self.spec(c).encode = method

    def scale(self, i: int, step: dict) -> None:
        method = _choice(step, i, "method", SCALE, "standard")
        cols = self.columns(i, step, NUMERIC)
        self.require_kinds(i, cols, (NUMERIC,), "{c!r} is {kind}, not numeric: it cannot be scaled.")
        for c in cols:
            self.spec(c).scale = method

    def date_parts(self, i: int, step: dict) -> None:
        parts = step.get("parts", ["year", "month", "day", "dayofweek"])
        if not isinstance(parts, list) or not parts or any(p not in DATE_PARTS for p in parts):
            raise RecipeError(f"Parts must be a list of {', '.join(DATE_PARTS)}.", step=i, field=f"steps[{i}].parts")
        cols = self.columns(i, step, DATETIME)
        fmt = _date_format_field(step, i, cols, self.features)
        for c in cols:
            epoch = fmt in (EPOCH_S, EPOCH_MS) and self.kinds[c] == NUMERIC  # Unix times are numbers
            if self.kinds[c] not in (DATETIME, CATEGORICAL, TEXT) and not epoch:
                raise RecipeError(f"{c!r} is {self.kinds[c]}, not a date.", step=i, field=f"steps[{i}].columns")
            self.kinds[c] = DATETIME
            self.spec(c).kind = DATETIME
            self.spec(c).parts = tuple(parts)
            self.spec(c).date_format = fmt

    def ratio(self, i: int, step: dict) -> None:
        from datasets.transformers import Ratio

        num = _one_column(step, i, self.available, self.target, "numerator")
        den = _one_column(step, i, self.available, self.target, "denominator")
        for c in (num, den):
            if self.kinds[c] != NUMERIC:
                raise RecipeError(f"{c!r} is {self.kinds[c]}, not numeric.", step=i, field=f"steps[{i}].numerator")
        name = _new_name(step, i, self.available, f"{num}_per_{den}")
        self.add_derived(f"ratio_{i}", Ratio(numerator=num, denominator=den, name=name), {num, den})
        self.new_column(name)

    def age(self, i: int, step: dict) -> None:
        from datasets.transformers import AgeFromDate

        col = _one_column(step, i, self.available, self.target)
        name = _new_name(step, i, self.available, f"{col}_age")
        reference = step.get("reference") or date.today().isoformat()
        try:
            pd.Timestamp(reference)
        except (ValueError, TypeError):
            raise RecipeError("Must be an ISO date.", step=i, field=f"steps[{i}].reference") from None
        self.add_derived(f"age_{i}", AgeFromDate(column=col, name=name, reference=str(reference)), {col})
        self.new_column(name)
        self.notes.append(f"Age of {col!r} computed at {reference} (fixed with the model).")

    def uppercase_ratio(self, i: int, step: dict) -> None:
        from datasets.transformers import UppercaseRatio

        col = _one_column(step, i, self.available, self.target)
        name = _new_name(step, i, self.available, f"{col}_uppercase_ratio")
        self.add_derived(f"upper_{i}", UppercaseRatio(column=col, name=name), {col})
        self.new_column(name)

    def tfidf(self, i: int, step: dict) -> None:
        col = _one_column(step, i, self.available, self.target)
        self.spec(col).kind = TEXT
        self.kinds[col] = TEXT
        self.spec(col).tfidf = _positive_int(step, i, "max_features", 200, maximum=20_000)

    def pca(self, i: int, step: dict) -> None:
        from sklearn.decomposition import PCA

        n = _positive_int(step, i, "n_components", maximum=10_000)
        self.tail.append((f"pca_{i}", PCA(n_components=n, random_state=0)))

    def select_k_best(self, i: int, step: dict) -> None:
        from sklearn.feature_selection import SelectKBest, f_classif, f_regression

        k = _positive_int(step, i, "k", maximum=100_000)
        y = self.frame[self.target] if self.target in self.frame.columns else None
        classification = y is not None and (not pd.api.types.is_numeric_dtype(y) or y.nunique() <= 20)
        self.tail.append((f"select_{i}", SelectKBest(score_func=f_classif if classification else f_regression, k=k)))

    # --- assembly ---------------------------------------------------------------------------------

    def build(self) -> RecipePlan:
        from datasets.transformers import ColumnDropper

        used: list[str] = []
        groups: dict[tuple, list[str]] = {}
        for c in self.available:
            s = self.specs.get(c) or _ColumnSpec(kind=self.kinds[c])
            if s.kind == ID_LIKE or (s.kind == TEXT and not s.tfidf):
                self.notes.append(f"Dropped {c!r} ({s.kind}; use tfidf for text, encode to keep an id-like code).")
                continue
            if s.tfidf:
                groups[("tfidf", c)] = [c]  # TfidfVectorizer takes one column
            else:
                groups.setdefault(
                    (s.kind, s.impute, str(s.fill_value), s.encode, s.scale, s.parts, s.date_format), []
                ).append(c)
            used.append(c)
        if not used:
            raise RecipeError("The recipe leaves no feature columns.", field="steps")
        transformers = []
        for n, (key, cols) in enumerate(groups.items()):
            s = self.specs.get(cols[0]) or _ColumnSpec(kind=self.kinds[cols[0]])
            transformers.append((f"{key[0]}_{n}", _column_pipeline(s), cols))
        pipeline_steps: list[tuple[str, Any]] = list(self.derive)
        if self.dropped:
            pipeline_steps.append(("drop", ColumnDropper(columns=tuple(self.dropped))))
        pipeline_steps.append(("columns", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0)))
        pipeline_steps.extend(self.tail)
        raw_needed = [c for c in self.features.columns if c in set(used) | self.sources]
        if self.dropped:
            self.notes.append("Dropped " + ", ".join(repr(c) for c in self.dropped) + ".")
        if self.dedup:
            self.notes.append("Duplicate rows are removed from training data only.")
        if self.outliers:
            self.notes.append("Outliers are removed from training data only; inference sees every row.")
        row_filter = _row_filter(self.dedup, self.outliers)
        return RecipePlan(Pipeline(pipeline_steps), raw_needed, self.kinds, row_filter, self.notes)


def compile_steps(steps: list[dict], *, frame: pd.DataFrame, target: str) -> RecipePlan:
    """Validated steps (`recipes.validate_steps`) compiled against a sample of the training frame."""
    compiler = _Compiler(frame, target)
    for i, step in enumerate(steps):
        op = step["op"]
        if compiler.tail and op not in ("pca", "select_k_best"):
            raise RecipeError(
                "pca and select_k_best work on the prepared matrix: put them after every column step.",
                step=i,
                field=f"steps[{i}].op",
            )
        getattr(compiler, op)(i, step)
    return compiler.build()
