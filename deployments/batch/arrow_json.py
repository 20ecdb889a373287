"""JSON text of Arrow columns, one value per row, with pyarrow kernels (no per-row Python), and
time-ordered ids for a whole chunk: how a batch's predictions become Prediction rows fast.
No Django here."""

from __future__ import annotations

import binascii
import json
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from deployments.ml.scoring import label

_NEEDS_JSON_ESCAPE_RE = '[\\\\"\x00-\x1f]'


def uuid7_strings(n: int) -> np.ndarray:
    """n time-ordered UUIDv7 ids as 32-hex-digit strings, generated without a Python loop."""
    return uuid7_hex(uuid7_raw(n))


def uuid7_hex(raw: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 ids as 32-hex-digit strings."""
    hexed = binascii.hexlify(np.ascontiguousarray(raw).tobytes())
    return np.frombuffer(hexed, dtype="S32").astype(str)


def uuid7_raw(n: int) -> np.ndarray:
    """n time-ordered UUIDv7 ids as an (n, 16) uint8 array."""
    ms = time.time_ns() // 1_000_000
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    ts = np.array([(ms >> (8 * (5 - i))) & 0xFF for i in range(6)], dtype=np.uint8)
    raw[:, :6] = ts
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def decoded(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def _float_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Floats as JSON numbers, written like Python's repr (1.0 stays 1.0); NaN / inf / null -> null."""
    values = values.cast(pa.float64())
    text = pc.replace_substring_regex(values.cast(pa.string()), pattern=r"^(-?\d+)$", replacement=r"\1.0")
    finite = pc.fill_null(pc.is_finite(values), False)
    return pc.if_else(finite, text, pa.scalar("null"))


def _string_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Strings as JSON strings; the rare value with a quote, backslash or control character via json.dumps."""
    values = values.cast(pa.string())
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    special = pc.fill_null(pc.match_substring_regex(values, _NEEDS_JSON_ESCAPE_RE), False)
    if pc.any(special).as_py():
        if isinstance(values, pa.ChunkedArray):
            values, quoted, special = values.combine_chunks(), quoted.combine_chunks(), special.combine_chunks()
        escaped = [json.dumps(v) for v in values.filter(special).to_pylist()]
        quoted = pc.replace_with_mask(quoted, special, pa.array(escaped, type=pa.string()))
    return pc.fill_null(quoted, "null")


def json_values(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The JSON text of each value of a column (null for missing), as a string array."""
    values = decoded(values)
    t = values.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _float_text(values)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pc.fill_null(values.cast(pa.string()), "null")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _string_text(values)
    if pa.types.is_null(t):
        return pa.array(["null"] * len(values), type=pa.string())
    # Dates, times, lists...: pandas' JSON encoder (ISO dates), value by value. Rare in practice.
    series = pd.Series(values.to_pandas() if hasattr(values, "to_pandas") else values)
    rows = json.loads(series.to_frame().to_json(orient="values", date_format="iso"))
    return pa.array([json.dumps(r[0]) for r in rows], type=pa.string())


def json_objects(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """One JSON object per row of the table: {"column": value, ...}."""
    if table.num_columns == 0:
        return pa.array(["{}"] * table.num_rows, type=pa.string())
    parts: list[Any] = []
    for j, name in enumerate(table.column_names):
        parts.append(("{" if j == 0 else ",") + json.dumps(str(name)) + ":")
        parts.append(json_values(table.column(j)))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def json_labels(labels: np.ndarray) -> pa.Array:
    """Predicted labels as JSON text: numbers as numbers, everything else through json.dumps."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "f":
        return _float_text(pa.array(arr))
    codes, uniques = pd.factorize(pd.Series(arr, dtype=object), use_na_sentinel=False)
    texts = np.array([json.dumps(label(u)) for u in uniques], dtype=object)
    return pa.array(texts[codes], type=pa.string())


def json_probabilities(proba: np.ndarray, classes: list[str]) -> pa.ChunkedArray | pa.Array:
    """{"class": probability rounded to 6 decimals, ...} per row."""
    rounded = np.round(proba, 6)
    parts: list[Any] = []
    for j, cls in enumerate(classes):
        parts.append(("{" if j == 0 else ",") + json.dumps(str(cls)) + ":")
        parts.append(_float_text(pa.array(rounded[:, j])))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")
