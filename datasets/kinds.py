"""Column kinds inferred from data: the vocabulary shared by profiling, recipes and schemas."""

from __future__ import annotations

import pandas as pd

from datasets.dates import detect_date_format

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
DATETIME = "datetime"
TEXT = "text"
ID_LIKE = "id"

KINDS = (NUMERIC, CATEGORICAL, BOOLEAN, DATETIME, TEXT, ID_LIKE)


def infer_kind(series: pd.Series, *, unique: int | None = None) -> str:
    """A column's kind, from its dtype and its values (cheap: samples long columns).

    `unique` (distinct non-missing values) may be passed when the caller has counted it.
    """
    # Avoid copying a long column: count, and sample the head for the text checks.
    n = int(series.notna().sum())
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(series):
        return DATETIME
    if n == 0:
        return CATEGORICAL
    unique = series.nunique() if unique is None else unique
    if pd.api.types.is_numeric_dtype(series):
        if unique <= 2 and set(pd.unique(series.dropna())).issubset({0, 1}):
            return BOOLEAN
        # Nearly unique (duplicated rows repeat an id, so not exactly unique) integer codes.
        if pd.api.types.is_integer_dtype(series) and unique >= 0.95 * n and n >= 50 and _is_sequence_like(series):
            return ID_LIKE
        return NUMERIC
    sample = series.head(50_000).dropna().head(5000).astype(str)
    if unique <= 2 and {v.lower() for v in sample.unique()} <= {"true", "false", "yes", "no", "y", "n", "t", "f"}:
        return BOOLEAN
    if detect_date_format(sample) is not None:  # ISO, Mar-2018, 03/2018, 1 Mar 2018, ...
        return DATETIME
    if unique >= 0.95 * n and n >= 50 and sample.str.len().mean() < 40 and words_per_value(sample) < 2:
        return ID_LIKE
    mean_len = sample.str.len().mean()
    words = sample.str.count(" ").mean()
    if mean_len > 30 and words >= 3 and unique > 0.5 * n:
        return TEXT
    return CATEGORICAL


def words_per_value(sample: pd.Series) -> float:
    return float(sample.str.count(" ").mean())


def _is_sequence_like(s: pd.Series) -> bool:
    # An integer column of distinct values is an id when it looks like a counter or a code,
    # not a measurement: mostly increasing, or spanning a range near its length.
    span = s.max() - s.min()
    return bool(span <= 10 * len(s))


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): infer_kind(frame[c]) for c in frame.columns}
