"""Our own scikit-learn transformers used by recipes. Each one is in the skops allowlist
(mlplatform/artifacts.py): keep them plain (numpy/pandas state only, no callables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from datasets.dates import detect_date_format, epoch_format, parse_dates


def _date_format(values: pd.Series, named: str) -> str:
    """The format to read a date column with: the one named, else the one recognised ("" = per value)."""
    if named:
        return named
    guess = detect_date_format(values)
    if guess is not None:
        return guess.format
    return epoch_format(str(values.name), values) or ""


class DateParts(BaseEstimator, TransformerMixin):
    """Datetime columns -> year, month, day, day of week, hour (numeric).

    Text dates are read with one format per column: `format` when the recipe names it, else the
    format the profile recognises (`datasets.dates`), learned at fit and saved with the model,
    so inference reads `01/03/2018` as training did.
    """

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "day", "dayofweek"), format: str = ""):
        self.parts = parts
        self.format = format

    def fit(self, X, y=None):
        frame = pd.DataFrame(X)
        self.columns_ = list(frame.columns)
        self.formats_ = [_date_format(frame[c], self.format) for c in self.columns_]
        return self

    def transform(self, X):
        frame = pd.DataFrame(X, columns=self.columns_)
        # Models saved before formats were learned parse value by value, as they did then.
        formats = getattr(self, "formats_", None) or [""] * len(self.columns_)
        out = {}
        for column, fmt in zip(self.columns_, formats, strict=True):
            values = parse_dates(frame[column], fmt)
            for part in self.parts:
                # "dayofweek"/"dayofyear" are the recipe's public names; pandas renamed the accessors
                attr = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}.get(part, part)
                out[f"{column}_{part}"] = getattr(values.dt, attr).astype("float64")
        return pd.DataFrame(out).to_numpy(dtype="float64")

    def get_feature_names_out(self, input_features=None):
        return np.array([f"{c}_{p}" for c in self.columns_ for p in self.parts], dtype=object)


class ToString(BaseEstimator, TransformerMixin):
    """Categorical values as strings (so 1, "1" and 1.0 are one category; missing stays missing)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        return (
            frame.astype(object)
            .where(frame.notna(), np.nan)
            .map(lambda v: v if isinstance(v, float) and np.isnan(v) else str(v))
            .to_numpy(dtype=object)
        )

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object) if input_features is not None else None


class ToFloat(BaseEstimator, TransformerMixin):
    """Booleans and numeric-looking values as floats (True/yes -> 1, False/no -> 0)."""

    _MAP = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0, "t": 1.0, "f": 0.0}

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        out = frame.apply(
            lambda col: pd.to_numeric(
                col.map(lambda v: self._MAP.get(str(v).strip().lower(), v) if isinstance(v, str) else v),
                errors="coerce",
            )
        )
        return out.to_numpy(dtype="float64")

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object) if input_features is not None else None


class ColumnDropper(BaseEstimator, TransformerMixin):
    """Drops named columns from a DataFrame (the recipe's drop_columns step)."""

    def __init__(self, columns: tuple[str, ...] = ()):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return pd.DataFrame(X).drop(columns=list(self.columns), errors="ignore")


class Ratio(BaseEstimator, TransformerMixin):
    """Adds `name` = numerator / denominator (division by zero -> missing)."""

    def __init__(self, numerator: str = "", denominator: str = "", name: str = ""):
        self.numerator = numerator
        self.denominator = denominator
        self.name = name

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X).copy()
        num = pd.to_numeric(frame[self.numerator], errors="coerce").astype("float64")
        den = pd.to_numeric(frame[self.denominator], errors="coerce").astype("float64")
        frame[self.name] = (num / den.where(den != 0)).replace([np.inf, -np.inf], np.nan)
        return frame


class AgeFromDate(BaseEstimator, TransformerMixin):
    """Adds `name` = age in years at `reference` (an ISO date fixed when the recipe compiles, so
    the same birth date gives the same age in training and at inference of that model)."""

    def __init__(self, column: str = "", name: str = "", reference: str = ""):
        self.column = column
        self.name = name
        self.reference = reference

    def fit(self, X, y=None):
        self.format_ = _date_format(pd.DataFrame(X)[self.column], "")
        return self

    def transform(self, X):
        frame = pd.DataFrame(X).copy()
        born = parse_dates(frame[self.column], getattr(self, "format_", ""))
        ref = pd.Timestamp(self.reference)
        frame[self.name] = ((ref - born).dt.days / 365.25).astype("float64")
        return frame


class UppercaseRatio(BaseEstimator, TransformerMixin):
    """Adds `name` = share of letters in upper case in a text column (shouting, spam)."""

    def __init__(self, column: str = "", name: str = ""):
        self.column = column
        self.name = name

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        frame = pd.DataFrame(X).copy()
        text = frame[self.column].astype("string").fillna("")
        upper = text.str.count(r"[A-Z]").astype("float64")
        letters = text.str.count(r"[A-Za-z]").astype("float64")
        frame[self.name] = (upper / letters.where(letters > 0)).fillna(0.0).astype("float64")
        return frame


class TextColumn(BaseEstimator, TransformerMixin):
    """One column as a 1-D array of strings (what TfidfVectorizer wants), missing -> ""."""

    def fit(self, X, y=None):
        self.column_ = pd.DataFrame(X).columns[0]
        return self

    def transform(self, X):
        frame = pd.DataFrame(X)
        return frame.iloc[:, 0].astype("string").fillna("").to_numpy(dtype=object)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object) if input_features is not None else None


class CategoryCleaner(BaseEstimator, TransformerMixin):
    """The recipe's clean_categories step: one spelling per category (datasets/categories.py).

    Learns on the training rows, per column, which spellings are one category (case, spaces,
    Unicode forms, and with `merge_similar` rare near-identical spellings) and writes the
    category's most frequent spelling. Its state is plain dicts (saved with the model by skops):
    `mappings_[column][key] = spelling`, and `changes_[column]` the mapping shown to people.
    """

    def __init__(self, columns: tuple[str, ...] = (), merge_similar: bool = True):
        self.columns = columns
        self.merge_similar = merge_similar

    def fit(self, X, y=None):
        from datasets import categories

        frame = pd.DataFrame(X)
        self.mappings_: dict[str, dict[str, str]] = {}
        self.changes_: dict[str, list[dict]] = {}
        for column in self.columns:
            cleaning = categories.learn(frame[column], merge_similar=self.merge_similar)
            self.mappings_[column] = {k: cleaning.canonical[cleaning.merged.get(k, k)] for k in cleaning.canonical}
            self.changes_[column] = categories.mapping_table(cleaning)
        return self

    def transform(self, X):
        from datasets.categories import is_missing, key_of, tidy

        frame = pd.DataFrame(X).copy()
        for column, mapping in self.mappings_.items():
            # Clean each distinct value once: a million rows of one column have few categories.
            codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
            cleaned = np.array(
                [v if is_missing(v) else mapping.get(key_of(v), tidy(v)) for v in uniques] + [np.nan], dtype=object
            )
            frame[column] = pd.Series(cleaned[codes], index=frame.index, dtype=object)
        return frame
