"""A compiled scoring path for the predict API's small requests, proven equal to the pipeline first.

A one-row `pipeline.predict_proba(DataFrame)` spends about 80% of its time in scikit-learn's
per-call machinery around the preprocessing (ColumnTransformer column selection on pandas,
input checks, joblib dispatch), not in arithmetic: 2 ms of 2.5 ms for the benchmark's model.
`compile_model` turns a fitted Pipeline(ColumnTransformer, ..., final estimator) into plain
numpy operations on the request's columns, then hands the final estimator the same matrix
the pipeline would have:

- numeric steps replay scikit-learn's own arithmetic on the fitted attributes, operation for
  operation (StandardScaler: x - mean_, / scale_; MinMaxScaler; RobustScaler; SimpleImputer);
- categorical encoders (OneHotEncoder, OrdinalEncoder, with infrequent categories, drop and
  unknown handling) are not re-implemented: they are *tabulated* once by asking the fitted
  encoder for the output of every known category, of an unseen value and of a missing one;
- anything else (another transformer, a sparse or pandas output, a final estimator fitted on
  named columns) is not compiled: the pipeline runs as it is.

A compiled model is used only after `verify` has scored generated rows (every category, the
numeric ranges, missing values, unseen categories) through both paths and found bit-identical
matrices (same dtype, same values, same errors). The cost is paid once per model version and
process; any doubt leaves the model on scikit-learn's path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from datasets.transformers import ToFloat, ToString

logger = logging.getLogger(__name__)

Cols = list[np.ndarray]
Node = Callable[[Cols], Cols]


class NotCompilable(Exception):
    pass


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _as_float(c: np.ndarray) -> np.ndarray:
    if c.dtype == np.float64:
        return c.copy()
    if c.dtype == object:
        return np.array([np.nan if v is None else v for v in c], dtype=np.float64)
    return c.astype(np.float64)


def _pandas_output(est: Any) -> bool:
    return (getattr(est, "_sklearn_output_config", None) or {}).get("transform") not in (None, "default")


# --- numeric steps: scikit-learn's arithmetic on the fitted attributes --------------------------------


def _center_scale(center: np.ndarray | None, scale: np.ndarray | None) -> Node:
    """x - center, then / scale, per column: StandardScaler's and RobustScaler's arithmetic."""

    def run(cols: Cols) -> Cols:
        out = []
        for i, c in enumerate(cols):
            x = _as_float(c)
            if center is not None:
                x -= center[i]
            if scale is not None:
                x /= scale[i]
            out.append(x)
        return out

    return run


def _standard(est: StandardScaler) -> Node:
    return _center_scale(est.mean_ if est.with_mean else None, est.scale_ if est.with_std else None)


def _robust(est: RobustScaler) -> Node:
    return _center_scale(est.center_ if est.with_centering else None, est.scale_ if est.with_scaling else None)


def _minmax(est: MinMaxScaler) -> Node:
    scale, low = est.scale_, est.min_
    lo, hi = est.feature_range

    def run(cols: Cols) -> Cols:
        out = []
        for i, c in enumerate(cols):
            x = _as_float(c)
            x *= scale[i]
            x += low[i]
            if est.clip:
                np.clip(x, lo, hi, out=x)
            out.append(x)
        return out

    return run


def _imputer(est: SimpleImputer) -> Node:
    mv = est.missing_values
    if est.add_indicator or not (isinstance(mv, float) and math.isnan(mv)):
        raise NotCompilable("imputer with an indicator or a custom missing value")
    stats = list(est.statistics_)
    if any(_missing(s) for s in stats):
        raise NotCompilable("imputer with an empty feature")
    keeps_objects = est.strategy in ("most_frequent", "constant")

    def run(cols: Cols) -> Cols:
        out = []
        for c, stat in zip(cols, stats, strict=True):
            if c.dtype == object and keeps_objects:
                x = c.copy()
                if len(x) > VECTOR_ROWS:
                    x[pd.isna(x)] = stat
                else:
                    for k, v in enumerate(x):
                        if _missing(v):
                            x[k] = stat
                out.append(x)
            else:
                x = _as_float(c)
                x[np.isnan(x)] = stat
                out.append(x)
        return out

    return run


def _to_string(est: ToString) -> Node:
    def run(cols: Cols) -> Cols:
        return [np.array([np.nan if _missing(v) else str(v) for v in c], dtype=object) for c in cols]

    return run


def _to_float(est: ToFloat) -> Node:
    table = est._MAP

    def one(v: Any) -> float:
        if v is None:
            return math.nan
        if isinstance(v, str):
            mapped = table.get(v.strip().lower())
            if mapped is not None:
                return mapped
            return float(pd.to_numeric(pd.Series([v], dtype=object), errors="coerce").iloc[0])
        return float(v)

    def run(cols: Cols) -> Cols:
        return [c.astype(np.float64) if c.dtype != object else np.array([one(v) for v in c]) for c in cols]

    return run


# --- categorical encoders: tabulated by asking the fitted encoder ---------------------------------------


def _text_column(c: np.ndarray) -> bool:
    """Would pandas store this column as text? (Some text, nothing but text besides missing values.)

    A DataFrame column built from such values gets pandas' string dtype, whose missing values are
    NaN; any other column keeps its objects, None staying None. Encoders may tell the two apart.
    """
    seen = False
    for v in c:
        if _missing(v):
            continue
        if not isinstance(v, str):
            return False
        seen = True
    return seen


class _Table:
    """The output block of one input feature: a row per known category, then unseen, None and NaN."""

    def __init__(self, rows: np.ndarray, index: dict[Any, int], ok: list[bool]):
        self.rows, self.index = rows, index
        k = len(index)
        self.unseen_row, self.none_row, self.nan_row = k, k + 1, k + 2
        self.ok = ok  # per row of `rows`: False where the fitted encoder raises
        self._lookup: pd.Index | None = None
        self._arrow_known: pa.Array | None = None

    def _check(self, codes: np.ndarray, c: np.ndarray) -> np.ndarray:
        for row in (self.unseen_row, self.none_row, self.nan_row):
            if not self.ok[row] and (codes == row).any():
                at = int(np.flatnonzero(codes == row)[0])
                if row == self.unseen_row:
                    raise ValueError(f"Found unknown category {c[at]!r} during transform")
                raise ValueError("Found a missing value the encoder was not fitted with")
        return codes

    def codes(self, c: np.ndarray) -> np.ndarray:
        if len(c) > VECTOR_ROWS:
            try:
                vectorised = self._codes_vectorised(c)
            except TypeError:  # an unhashable value: the loop below says which
                vectorised = None
            if vectorised is not None:
                return self._check(vectorised, c)
        as_text = _text_column(c)
        out = np.empty(len(c), dtype=np.intp)
        for k, v in enumerate(c):
            if _missing(v):
                out[k] = self.nan_row if (as_text or v is not None) else self.none_row
                continue
            try:
                code = self.index.get(v)
            except TypeError:
                code = None
            out[k] = self.unseen_row if code is None else code
        return self._check(out, c)

    def _codes_vectorised(self, c: np.ndarray) -> np.ndarray | None:
        """The same codes for many rows: one hash lookup in C per value (batch chunks)."""
        known = list(self.index)
        text = None
        if known and all(type(k) is str for k in known):
            try:  # text categories: Arrow's hash lookup, a few times faster than pandas' on objects
                text = pa.array(c, type=pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                text = None
        if text is not None:
            if text.null_count == len(text):
                return None  # nothing but missing values: None and NaN stay apart, the loop sorts them
            if self._arrow_known is None:
                self._arrow_known = pa.array(known, type=pa.string())
            missing = text.is_null().to_numpy(zero_copy_only=False)
            found = pc.fill_null(pc.index_in(text, value_set=self._arrow_known), -1).to_numpy(zero_copy_only=False)
            missing_row = np.full(len(c), self.nan_row)  # a text column: pandas makes every missing value NaN
        else:
            if self._lookup is None:
                self._lookup = pd.Index(known, dtype=object)
            objects = np.asarray(c, dtype=object)
            missing = pd.isna(objects)
            found = self._lookup.get_indexer(objects)
            missing_row = np.where(objects == None, self.none_row, self.nan_row)  # noqa: E711 - elementwise
        unseen = (found < 0) & ~missing
        return np.where(missing, missing_row, np.where(unseen, self.unseen_row, found)).astype(np.intp)


VECTOR_ROWS = 64  # above this many rows, categorical lookups and missing-value masks run vectorised


def _unseen_value(categories: np.ndarray) -> Any:
    if categories.dtype.kind in "iuf":
        finite = categories[~np.isnan(categories.astype(float))] if categories.dtype.kind == "f" else categories
        return float(np.max(finite)) + 1.5 if len(finite) else 0.5
    return "\x00mlplatform-unseen\x00"


def _encoder(est: OneHotEncoder | OrdinalEncoder, dense_ok: bool = False) -> Node:
    if getattr(est, "sparse_output", False) and not dense_ok:
        raise NotCompilable("sparse one-hot output")
    names = getattr(est, "feature_names_in_", None)
    n_features = len(est.categories_)
    widths = list(est._n_features_outs) if isinstance(est, OneHotEncoder) else [1] * n_features
    base = [cats[0] for cats in est.categories_]
    tables: list[_Table] = []
    offset = 0
    for j, cats in enumerate(est.categories_):
        known = [v for v in cats if not _missing(v)]
        probes = [*known, _unseen_value(np.asarray(known)) if known else "x", None, np.nan]
        rows = np.zeros((len(probes), widths[j]), dtype=np.dtype(est.dtype))
        ok = [True] * len(probes)
        for k, value in enumerate(probes):
            row = list(base)
            row[j] = value
            frame = np.array([row], dtype=object)
            X = pd.DataFrame(frame, columns=names) if names is not None else frame
            try:
                out = est.transform(X)
                out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            except (ValueError, TypeError):
                ok[k] = False
                continue
            rows[k] = out[0, offset : offset + widths[j]]
        if not all(ok[: len(known)]):
            raise NotCompilable("an encoder refuses one of its own categories")
        index = {v: k for k, v in enumerate(known)}
        tables.append(_Table(rows, index, ok))
        offset += widths[j]

    def run(cols: Cols) -> Cols:
        out: Cols = []
        for c, table in zip(cols, tables, strict=True):
            block = table.rows[table.codes(c)]
            out.extend(block[:, k].copy() for k in range(block.shape[1]))
        return out

    return run


# --- composition --------------------------------------------------------------------------------------------


def _node(est: Any, dense_ok: bool = False) -> Node:
    """The compiled step. dense_ok: a sparse output here is made dense by the enclosing ColumnTransformer
    (its last step of a branch, when the ColumnTransformer's own output is dense)."""
    if isinstance(est, str):
        if est == "passthrough":
            return lambda cols: cols
        raise NotCompilable(f"step {est!r}")
    if _pandas_output(est):
        raise NotCompilable("pandas output")
    kind = type(est)
    if kind is Pipeline:
        steps = [step for _, step in est.steps if step not in (None, "passthrough")]
        nodes = [_node(step, dense_ok=dense_ok and k == len(steps) - 1) for k, step in enumerate(steps)]

        def chain(cols: Cols) -> Cols:
            for node in nodes:
                cols = node(cols)
            return cols

        return chain
    if kind is ColumnTransformer:
        return _column_transformer(est)
    if kind is FunctionTransformer:
        if est.func is not None or est.validate:
            raise NotCompilable("function transformer with a function")
        return lambda cols: cols
    table: dict[type, Callable[[Any], Node]] = {
        StandardScaler: _standard,
        MinMaxScaler: _minmax,
        RobustScaler: _robust,
        SimpleImputer: _imputer,
        ToString: _to_string,
        ToFloat: _to_float,
    }
    if kind in (OneHotEncoder, OrdinalEncoder):
        return _encoder(est, dense_ok=dense_ok)
    make = table.get(kind)
    if make is None:
        raise NotCompilable(f"{kind.__name__} is not compiled")
    return make(est)


def _column_transformer(ct: ColumnTransformer) -> Node:
    if getattr(ct, "sparse_output_", False):
        raise NotCompilable("sparse column transformer output")
    parts: list[tuple[list[int], Node]] = []
    for name, trans, _cols in ct.transformers_:
        indices = list(ct._transformer_to_input_indices.get(name, []))
        if trans == "drop" or not indices:
            continue
        parts.append((indices, _node(trans, dense_ok=True)))

    def run(cols: Cols) -> Cols:
        out: Cols = []
        for indices, node in parts:
            out.extend(node([cols[i] for i in indices]))
        return out

    return run


class CompiledModel:
    """Duck-types the pipeline for `scoring.score`: X is {feature name: 1-D array} (Validator.arrays)."""

    def __init__(self, pipeline: Pipeline, names: list[str], transform: Node):
        self.pipeline = pipeline
        self.final = pipeline.steps[-1][1]
        self.names = names
        self.transform_columns = transform
        self.classes_ = getattr(self.final, "classes_", None)
        # pandas hands scikit-learn mixed bool / number columns as an object matrix: when the
        # pipeline does, so do we (set by `verify`), and the estimator converts both the same way.
        self.output_dtype: Any = None

    def matrix(self, X: dict[str, np.ndarray]) -> np.ndarray:
        out = np.column_stack(self.transform_columns([X[n] for n in self.names]))
        return out if self.output_dtype is None else out.astype(self.output_dtype)

    def predict(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return self.final.predict(self.matrix(X))


class CompiledClassifier(CompiledModel):
    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return self.final.predict_proba(self.matrix(X))


def compile_model(model: Any) -> CompiledModel | None:
    """The compiled twin of a fitted pipeline, or None when it has a step we do not compile."""
    if type(model) is not Pipeline or len(model.steps) < 2:
        return None
    final = model.steps[-1][1]
    first = model.steps[0][1]
    names = getattr(first, "feature_names_in_", None)
    if names is None or hasattr(final, "feature_names_in_"):
        return None  # fitted on unnamed columns, or the estimator wants named (pandas) input
    try:
        nodes = [_node(step) for _, step in model.steps[:-1] if step not in (None, "passthrough")]
    except NotCompilable as exc:
        logger.info("serving fast path: not compiled (%s)", exc)
        return None
    except Exception:
        logger.warning("serving fast path: compiling failed", exc_info=True)
        return None

    def transform(cols: Cols) -> Cols:
        for node in nodes:
            cols = node(cols)
        return cols

    kind = CompiledClassifier if hasattr(final, "predict_proba") else CompiledModel
    return kind(model, [str(n) for n in names], transform)


# --- proof -------------------------------------------------------------------------------------------------


def verification_sets(schema: list[dict[str, Any]], n: int = 64) -> list[dict[str, list[Any]]]:
    """Rows covering every category and the numeric ranges; the same with missing values among them;
    a row of missing values only; a row of unseen categories."""
    rng = np.random.default_rng(0)
    normal: dict[str, list[Any]] = {}
    mixed: dict[str, list[Any]] = {}
    missing: dict[str, list[Any]] = {}
    unseen: dict[str, list[Any]] = {}
    for f in schema:
        name, kind = f["name"], f["type"]
        if kind == "numeric":
            lo, hi = float(f.get("min", 0) or 0), float(f.get("max", 1) or 1)
            values = list(np.linspace(lo, hi, n))
            if f.get("integer"):
                values = [round(float(v)) for v in values]
            else:
                values = [float(v) for v in rng.uniform(lo, hi, n)]
                values[:2] = [lo, hi]
            other: Any = values[0]
        elif kind == "categorical":
            cats = list(f.get("categories") or ["a"])
            numeric_labels = f.get("dtype", "").startswith(("int", "float"))
            cats = [(float(c) if "." in c else int(c)) if numeric_labels else c for c in cats]
            values = [cats[k % len(cats)] for k in range(n)]
            other = 987654321 if numeric_labels else "never seen in training"
        elif kind == "boolean":
            values = [bool(k % 2) for k in range(n)]
            other = values[0]
        else:
            values = [f"text {k}" for k in range(n)]
            other = "never seen in training"
        normal[name] = values
        mixed[name] = [None if k % 3 == 1 else v for k, v in enumerate(values)]
        missing[name] = [None]
        unseen[name] = [other]
    return [normal, mixed, missing, unseen]


def verify(compiled: CompiledModel, validator: Any, schema: list[dict[str, Any]]) -> str | None:
    """None when the compiled path gives the pipeline's own matrix on every generated row; else why not."""
    slow_transform = compiled.pipeline[:-1]
    for columns in verification_sets(schema):
        slow_error = fast_error = None
        slow = fast = None
        try:
            slow = np.asarray(slow_transform.transform(validator.frame(columns)))
        except Exception as exc:  # noqa: BLE001 - compared with the compiled path's outcome below
            slow_error = exc
        try:
            fast = compiled.matrix(validator.arrays(columns))
        except Exception as exc:  # noqa: BLE001
            fast_error = exc
        if (slow_error is None) != (fast_error is None):
            return f"one path failed and not the other ({slow_error or fast_error!r})"
        if slow_error is not None:
            continue
        if slow.dtype == object and fast.dtype != object and compiled.output_dtype is None:
            compiled.output_dtype = object
            fast = fast.astype(object)
        if slow.dtype != fast.dtype or slow.shape != fast.shape:
            return f"matrix {fast.dtype}{fast.shape} instead of {slow.dtype}{slow.shape}"
        if not _equal(slow, fast):
            return "different values"
    return None


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != object:
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    try:  # an object matrix of numbers: equal as the estimator will read it (missing included)
        return np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True)
    except (TypeError, ValueError):
        return all(x == y or (_missing(x) and _missing(y)) for x, y in zip(a.ravel(), b.ravel(), strict=True))


# --- per process ----------------------------------------------------------------------------------------------

MAX_ROWS = 64  # larger requests go through scikit-learn, whose per-call cost is then shared by many rows
_compiled: dict[tuple[int, str], CompiledModel | None] = {}


def compiled_for(version: Any, model: Any, validator: Any) -> CompiledModel | None:
    """The verified compiled twin of a model version's pipeline (once per process), or None."""
    key = (version.pk, version.sha256)
    if key in _compiled:
        return _compiled[key]
    compiled = compile_model(model)
    if compiled is not None:
        why = verify(compiled, validator, version.input_schema)
        if why is not None:
            logger.warning("serving fast path: model version %s stays on scikit-learn (%s)", version.pk, why)
            compiled = None
    if len(_compiled) > 64:
        _compiled.clear()
    _compiled[key] = compiled
    return compiled


def columns_of(X: pd.DataFrame) -> dict[str, np.ndarray]:
    """A validated batch chunk (schema.validate_frame) as the compiled path's columns."""
    out: dict[str, np.ndarray] = {}
    for name in X.columns:
        col = X[name]
        if isinstance(col.dtype, pd.StringDtype) or col.dtype == object:
            out[str(name)] = col.to_numpy(dtype=object, na_value=None)
        else:
            out[str(name)] = col.to_numpy()
    return out


SAMPLE_ROWS = 100  # rows of each batch chunk scored both ways before the compiled path is trusted with it


def same_as_pipeline(compiled: CompiledModel, X: pd.DataFrame, columns: dict[str, np.ndarray]) -> bool:
    """Do both paths give the same matrix on this chunk's first rows (real data, vectorised path)?"""
    n = min(len(X), SAMPLE_ROWS)
    try:
        slow = np.asarray(compiled.pipeline[:-1].transform(X.iloc[:n]))
        fast = compiled.matrix({k: v[:n] for k, v in columns.items()})
    except Exception:  # noqa: BLE001 - either path failing: trust scikit-learn alone
        return False
    if slow.dtype == object and fast.dtype != object:
        fast = fast.astype(object)
    return slow.shape == fast.shape and _equal(slow, fast)
