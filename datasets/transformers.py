"""Our own scikit-learn transformers used by recipes. Each one is in the skops allowlist
(mlplatform/artifacts.py): keep them plain (numpy/pandas state only, no callables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class DateParts(BaseEstimator, TransformerMixin):
    """Datetime columns -> year, month, day, day of week, hour (numeric)."""

    def __init__(self, parts: tuple[str, ...] = ("year", "month", "day", "dayofweek")):
        self.parts = parts

    def fit(self, X, y=None):
        self.columns_ = list(pd.DataFrame(X).columns)
        return self

    def transform(self, X):
        frame = pd.DataFrame(X, columns=self.columns_)
        out = {}
        for column in self.columns_:
            values = pd.to_datetime(frame[column], errors="coerce", format="mixed")
            for part in self.parts:
                out[f"{column}_{part}"] = getattr(values.dt, part).astype("float64")
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
