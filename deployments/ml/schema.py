"""Input schemas and their validators, free of Django.

- `schema_infer` turns the training rows into the input schema stored on a model version
  (feature names, kinds, dtypes, categories, ranges, whether missing values were seen).
- `compile_validator` turns a schema + a deployment's policy into a list of per-feature
  checks built once and cached: validating a request is one pass over its values, with no
  per-column copies and no DataFrame until every instance is known to be valid.
- `validate_frame` is the vectorised twin used by batch inference (chunks of a file).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from datasets.categories import key_of
from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC, infer_kind

MAX_CATEGORIES = 1000  # a categorical feature with more distinct values is treated as free text

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


# --- schema ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def schema_infer(frame: pd.DataFrame, feature_columns: list[str], cleaned: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The input schema of a model trained on `frame[feature_columns]` (train + validation rows).

    `cleaned`: the columns the model's recipe cleans (`clean_categories`): their categories are
    matched as the cleaning does (case, spaces, Unicode forms), so "North " and "north" are known
    when "North" was seen; the model writes them as its learned spelling."""
    cleaned = set(cleaned)
    schema: list[dict[str, Any]] = []
    for name in feature_columns:
        s = frame[name]
        kind = infer_kind(s)
        entry: dict[str, Any] = {
            "name": str(name),
            "type": kind if kind in (NUMERIC, CATEGORICAL, BOOLEAN, DATETIME) else "text",
            "dtype": str(s.dtype),
            "nullable": bool(s.isna().any()),
        }
        non_null = s.dropna()
        if entry["type"] == NUMERIC and len(non_null):
            entry["min"] = _plain(non_null.min())
            entry["max"] = _plain(non_null.max())
            entry["integer"] = bool(pd.api.types.is_integer_dtype(s))
        elif entry["type"] == CATEGORICAL:
            uniques = pd.unique(non_null)
            if len(uniques) <= MAX_CATEGORIES:
                entry["categories"] = sorted(str(_plain(v)) for v in uniques)
                if name in cleaned:
                    entry["cleaned"] = True
            else:
                entry["type"] = "text"
        elif entry["type"] == DATETIME and len(non_null) and pd.api.types.is_datetime64_any_dtype(s):
            entry["min"] = _plain(non_null.min())
            entry["max"] = _plain(non_null.max())
        schema.append(entry)
    return schema


def sample_instance(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """A plausible instance (for the curl example and the try-it form)."""
    out: dict[str, Any] = {}
    for f in schema:
        t = f["type"]
        if t == NUMERIC:
            lo, hi = f.get("min", 0), f.get("max", 0)
            mid = (lo + hi) / 2 if lo is not None and hi is not None else 0
            out[f["name"]] = round(mid) if f.get("integer") else round(float(mid), 4)
        elif t == CATEGORICAL:
            cats = f.get("categories") or [""]
            # a tidy spelling when there is one (" SOUTH" sorts first and reads like a typo)
            out[f["name"]] = next((c for c in cats if c and c == c.strip()), cats[0])
        elif t == BOOLEAN:
            out[f["name"]] = _bool_sample(f)
        elif t == DATETIME:
            out[f["name"]] = str(f.get("min") or "2024-01-01")[:10]
        else:
            out[f["name"]] = "text"
    return out


def _bool_sample(f: dict[str, Any]) -> Any:
    return 0 if f.get("dtype", "").startswith(("int", "float")) else False


# --- per-instance validation (the API) ---------------------------------------------------------

Check = Callable[[Any], "tuple[Any, str | None]"]


class _Missing:
    pass


MISSING = _Missing()


def _numeric_check(spec: dict[str, Any], allow_null: bool) -> Check:
    def check(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return (math.nan, None) if allow_null else (None, "is null, and this feature does not allow missing values")
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None, f"must be a number, not {type(v).__name__}"
        if isinstance(v, float) and not math.isfinite(v):
            return None, "must be a finite number"
        return v, None

    return check


def _categorical_check(spec: dict[str, Any], allow_null: bool, unknown_policy: str) -> Check:
    categories = frozenset(spec.get("categories") or ())
    numeric_labels = spec.get("dtype", "").startswith(("int", "float"))
    strict = unknown_policy == "error" and bool(categories)
    if spec.get("cleaned"):  # matched as the model's clean_categories step does
        keys = frozenset(key_of(c) for c in categories)

        def known(key: str) -> bool:
            return key in categories or key_of(key) in keys
    else:

        def known(key: str) -> bool:
            return key in categories

    def check(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return (None, None) if allow_null else (None, "is null, and this feature does not allow missing values")
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            return None, f"must be a string, not {type(v).__name__}"
        if not isinstance(v, str) and not numeric_labels:
            return None, f"must be a string, not {type(v).__name__}"
        key = v if isinstance(v, str) else str(v)
        if strict and not known(key):
            shown = ", ".join(sorted(categories)[:10])
            return (
                None,
                f"unknown category {key!r} (seen in training: {shown}{', ...' if len(categories) > 10 else ''})",
            )
        return v, None

    return check


def _boolean_check(spec: dict[str, Any], allow_null: bool) -> Check:
    as_number = spec.get("dtype", "").startswith(("int", "float"))
    as_string = spec.get("dtype", "") in ("object", "str", "string")

    def check(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return (None, None) if allow_null else (None, "is null, and this feature does not allow missing values")
        if isinstance(v, bool):
            value = v
        elif isinstance(v, int | float) and v in (0, 1):
            value = bool(v)
        elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            if as_string:
                return v, None
            value = v.strip().lower() in _TRUE
        else:
            return None, "must be true or false"
        if as_number:
            return int(value), None
        if as_string:
            return str(value), None
        return value, None

    return check


def _text_check(spec: dict[str, Any], allow_null: bool) -> Check:
    def check(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return (None, None) if allow_null else (None, "is null, and this feature does not allow missing values")
        if not isinstance(v, str):
            return None, f"must be a string, not {type(v).__name__}"
        return v, None

    return check


def _datetime_check(spec: dict[str, Any], allow_null: bool) -> Check:
    def check(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return (None, None) if allow_null else (None, "is null, and this feature does not allow missing values")
        if not isinstance(v, str):
            return None, "must be an ISO date string (YYYY-MM-DD...)"
        try:
            pd.Timestamp(v)
        except (ValueError, TypeError):
            return None, f"is not a valid date: {v!r}"
        return v, None

    return check


@dataclass
class Validator:
    names: list[str]
    checks: list[Check]
    dtypes: list[str]
    kinds: list[str]
    name_set: frozenset[str] = field(default_factory=frozenset)

    def validate(self, instances: list[Any]) -> tuple[dict[str, list[Any]], dict[str, dict[str, list[str]]]]:
        """Columns of clean values, and errors {"instances[i]": {feature: [msg]}}."""
        columns: dict[str, list[Any]] = {n: [] for n in self.names}
        cols = [columns[n] for n in self.names]
        errors: dict[str, dict[str, list[str]]] = {}
        pairs = list(zip(self.names, self.checks, cols, strict=True))
        for i, inst in enumerate(instances):
            if not isinstance(inst, dict):
                errors[f"instances[{i}]"] = {"non_field_errors": ["must be an object of feature: value"]}
                continue
            bad: dict[str, list[str]] | None = None
            for name, check, col in pairs:
                v = inst.get(name, MISSING)
                if v is MISSING:
                    msg: str | None = "is missing"
                    value = None
                else:
                    value, msg = check(v)
                if msg is not None:
                    bad = bad or {}
                    bad[name] = [f"{name} {msg}."]
                else:
                    col.append(value)
            if not self.name_set.issuperset(inst):
                bad = bad or {}
                for k in [k for k in inst if k not in self.name_set][:20]:
                    bad[str(k)[:100]] = [f"Unexpected feature {str(k)[:100]!r}: the model does not use it."]
            if bad:
                errors[f"instances[{i}]"] = bad
        return columns, errors

    def frame(self, columns: dict[str, list[Any]]) -> pd.DataFrame:
        """One DataFrame, built column-wise, with the training dtypes."""
        return pd.DataFrame(self.arrays(columns), copy=False)

    def arrays(self, columns: dict[str, list[Any]]) -> dict[str, Any]:
        """The columns as arrays with the training dtypes (what `frame` is made of)."""
        data: dict[str, Any] = {}
        for name, dtype, kind in zip(self.names, self.dtypes, self.kinds, strict=True):
            values = columns[name]
            if kind == NUMERIC or (kind == BOOLEAN and dtype.startswith(("int", "float"))):
                arr = np.asarray(values, dtype=np.float64)
                if dtype.startswith("int") and not np.isnan(arr).any():
                    arr = arr.astype(dtype)
                data[name] = arr
            elif kind == BOOLEAN and dtype == "bool":
                data[name] = np.asarray(values, dtype=object) if None in values else np.asarray(values, dtype=bool)
            elif kind == DATETIME and dtype.startswith("datetime64"):
                data[name] = pd.to_datetime(pd.Series(values, dtype=object), format="mixed")
            else:
                arr = np.asarray(values, dtype=object)
                if kind in (CATEGORICAL, "text") and None in values:
                    # Missing text is NaN, as in the training data: a lone None would stay None in
                    # its column, and the encoders tell None and NaN apart, so a null category
                    # would be encoded one way alone and another way next to other rows.
                    arr[arr == None] = np.nan  # noqa: E711 - elementwise
                data[name] = arr
        return data


def compile_validator(schema: list[dict[str, Any]], *, unknown_policy: str, allow_missing: bool) -> Validator:
    names, checks, dtypes, kinds = [], [], [], []
    for spec in schema:
        allow_null = allow_missing or bool(spec.get("nullable"))
        t = spec["type"]
        if t == NUMERIC:
            check = _numeric_check(spec, allow_null)
        elif t == CATEGORICAL:
            check = _categorical_check(spec, allow_null, unknown_policy)
        elif t == BOOLEAN:
            check = _boolean_check(spec, allow_null)
        elif t == DATETIME:
            check = _datetime_check(spec, allow_null)
        else:
            check = _text_check(spec, allow_null)
        names.append(spec["name"])
        checks.append(check)
        dtypes.append(spec.get("dtype", "object"))
        kinds.append(t)
    return Validator(names, checks, dtypes, kinds, frozenset(names))


_validators: dict[tuple, Validator] = {}


def validator_cached(
    *, key: tuple, schema: list[dict[str, Any]], unknown_policy: str, allow_missing: bool
) -> Validator:
    full = (*key, unknown_policy, allow_missing)
    v = _validators.get(full)
    if v is None:
        v = compile_validator(schema, unknown_policy=unknown_policy, allow_missing=allow_missing)
        if len(_validators) > 256:
            _validators.clear()
        _validators[full] = v
    return v


# --- vectorised validation (batch) --------------------------------------------------------------


def _known(values: pd.Series, spec: dict[str, Any]) -> pd.Series:
    """Which values are categories seen in training (for a cleaned column: as the cleaning matches
    them, each distinct value cleaned once)."""
    known = values.isin(spec["categories"])
    if not spec.get("cleaned") or bool(known.all()):
        return known
    keys = {key_of(c) for c in spec["categories"]}
    distinct = pd.unique(values[~known & values.notna()])
    matched = [v for v in distinct if key_of(v) in keys]
    return known | values.isin(matched)


def validate_frame(
    frame: pd.DataFrame, schema: list[dict[str, Any]], *, unknown_policy: str, allow_missing: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cast a chunk of rows to the training dtypes; returns (features, per-row error messages or "")."""
    n = len(frame)
    errors = np.full(n, "", dtype=object)
    flagged = np.zeros(n, dtype=bool)
    data: dict[str, Any] = {}

    def flag(mask: np.ndarray, message: str) -> None:
        if not mask.any():
            return
        idx = np.flatnonzero(mask & ~flagged)  # the first problem of a row is the one reported
        errors[idx] = message
        flagged[idx] = True

    for spec in schema:
        name, t, dtype = spec["name"], spec["type"], spec.get("dtype", "object")
        allow_null = allow_missing or bool(spec.get("nullable"))
        if name not in frame.columns:
            raise KeyError(name)
        s = frame[name]
        null = s.isna().to_numpy()
        if t == NUMERIC or (t == BOOLEAN and dtype.startswith(("int", "float"))):
            num = pd.to_numeric(s, errors="coerce")
            if t == BOOLEAN and not pd.api.types.is_numeric_dtype(s):
                lowered = s.astype(str).str.strip().str.lower()
                num = pd.Series(np.where(lowered.isin(_TRUE), 1.0, np.where(lowered.isin(_FALSE), 0.0, np.nan)))
            arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
            flag(np.isnan(arr) & ~null, f"{name} must be a number")
            data[name] = arr
        elif t == BOOLEAN:
            if pd.api.types.is_bool_dtype(s):
                data[name] = s.to_numpy()
            else:
                lowered = s.astype(str).str.strip().str.lower()
                ok = lowered.isin(_TRUE | _FALSE).to_numpy()
                flag(~ok & ~null, f"{name} must be true or false")
                data[name] = lowered.isin(_TRUE).to_numpy() if dtype == "bool" else s.to_numpy(dtype=object)
        elif t == DATETIME and dtype.startswith("datetime64"):
            parsed = pd.to_datetime(s, errors="coerce", format="mixed")
            flag(parsed.isna().to_numpy() & ~null, f"{name} is not a valid date")
            data[name] = parsed
        elif isinstance(s.dtype, pd.StringDtype):
            # Text as pandas reads it (and as the model was trained on): checked and passed on
            # as it is, with Arrow's own membership test, no copy to Python objects.
            if t == CATEGORICAL and unknown_policy == "error" and spec.get("categories"):
                known = _known(s, spec).to_numpy(dtype=bool, na_value=False)
                flag(~known & ~null, f"{name} has an unknown category")
            data[name] = s
        else:
            values = s.astype(object).where(~s.isna(), None)
            if not pd.api.types.is_object_dtype(s) and not pd.api.types.is_string_dtype(s):
                values = s.astype(str).astype(object).where(~s.isna(), None)
            if t == CATEGORICAL and unknown_policy == "error" and spec.get("categories"):
                known = _known(values, spec).to_numpy(dtype=bool, na_value=False)
                flag(~known & ~null, f"{name} has an unknown category")
            data[name] = values.to_numpy(dtype=object)
        if not allow_null:
            flag(null, f"{name} is missing")
    return pd.DataFrame(data, copy=False), errors
