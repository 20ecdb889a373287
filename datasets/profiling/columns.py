"""One column's facts: kind, missing, unique, statistics, histogram, top values, shape.

Exact on every row: missing and unique counts, top values, min / max / mean / std, values at
the min / max. On the profile's sample: quantiles, histogram, outlier share, skewness. Shape
facts (skew, share outside 1.5 IQR, a cap, a date format) are listed in `facts` for people and
kept as fields for programs; they become warnings only when they matter (see `values.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from datasets.dates import detect_date_format, epoch_format, parse_dates
from datasets.kinds import DATETIME, NUMERIC, TEXT, infer_kind

from .common import as_numeric, fmt_number, json_float, skewness

HIST_BINS = 30
TOP_VALUES = 10
DATE_ROWS = 20_000
QUANTILES = ("p1", "p5", "p25", "p50", "p75", "p95", "p99")


def _top_values(series: pd.Series, n: int, counts: pd.Series | None = None) -> list[dict]:
    counts = (series.value_counts(dropna=True) if counts is None else counts).head(n)
    total = len(series)
    return [{"value": str(k), "count": int(v), "share": json_float(v / total)} for k, v in counts.items()]


def profile_column(name: str, series: pd.Series, sample: pd.Series, n: int) -> tuple[dict, dict]:
    """(profile entry, private numeric info used by the table checks)."""
    counts = None
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        unique = int(series.nunique(dropna=True))
    else:
        # One hash pass gives both the distinct count and the top values of a text column.
        counts = series.value_counts(dropna=True)
        unique = len(counts)
    kind = infer_kind(series, unique=unique)
    missing = int(series.isna().sum())
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "dtype": str(series.dtype),
        "missing": missing,
        "missing_share": json_float(missing / n) if n else 0.0,
        "unique": unique,
        "unique_share": json_float(unique / n) if n else 0.0,
        "facts": [],
    }
    info: dict[str, Any] = {}
    numeric = as_numeric(series, kind)
    if numeric is not None and kind == NUMERIC:
        _numeric_facts(entry, info, numeric, as_numeric(sample, kind), n, unique)
        entry["top_values"] = _top_values(series, 5) if unique <= 50 else []
        fmt = epoch_format(name, series)
        if fmt and len(info.get("sample_values", [])):
            _epoch_facts(entry, info["sample_values"], fmt)
    else:
        entry["top_values"] = _top_values(series, TOP_VALUES, counts)
        if kind == TEXT:
            lengths = sample.dropna().astype(str).str.len()
            entry["length"] = {"mean": json_float(lengths.mean()), "max": json_float(lengths.max())}
        if kind == DATETIME:
            _date_facts(entry, series, sample)
        if numeric is not None:
            entry["mean"] = json_float(numeric.mean())
    if missing and n:
        entry["facts"].insert(0, f"{missing / n:.1%} missing")
    return entry, info


def _numeric_facts(entry: dict, info: dict, numeric: pd.Series, sample: pd.Series, n: int, unique: int) -> None:
    values = numeric.to_numpy()
    finite = values[np.isfinite(values)]
    s_values = sample.to_numpy()
    s_finite = s_values[np.isfinite(s_values)]
    if not len(finite):
        return
    q = np.percentile(s_finite, [1, 5, 25, 50, 75, 95, 99]) if len(s_finite) else np.full(7, np.nan)
    vmin, vmax = float(finite.min()), float(finite.max())
    entry.update(
        {
            "min": json_float(vmin),
            "max": json_float(vmax),
            "mean": json_float(finite.mean()),
            "std": json_float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
            "quantiles": {k: json_float(v) for k, v in zip(QUANTILES, q, strict=True)},
            "zeros": int((finite == 0).sum()),
        }
    )
    counts, edges = np.histogram(s_finite, bins=min(HIST_BINS, max(1, unique)))
    entry["histogram"] = {"counts": counts.tolist(), "edges": [json_float(e) for e in edges]}
    iqr = q[4] - q[2]
    lo, hi = q[2] - 1.5 * iqr, q[4] + 1.5 * iqr
    outliers = int(((finite < lo) | (finite > hi)).sum()) if iqr > 0 else 0
    entry["outliers"] = {
        "method": "iqr",
        "count": outliers,
        "share": json_float(outliers / n),
        "low": json_float(lo),
        "high": json_float(hi),
    }
    entry["at_max"] = int((finite == vmax).sum())
    entry["at_min"] = int((finite == vmin).sum())
    skew = skewness(s_finite) if entry["std"] else None
    entry["skew"] = json_float(skew)
    if skew is not None and abs(skew) > 2:
        entry["facts"].append(f"skewed ({skew:+.1f}): a log or robust scaling helps linear models")
    if outliers and outliers / n > 0.01:
        entry["facts"].append(f"{outliers / n:.1%} outside 1.5 IQR [{fmt_number(float(lo))}, {fmt_number(float(hi))}]")
    info.update(finite=finite, sample_values=s_finite, vmax=vmax, vmin=vmin, q=q)


def _date_facts(entry: dict, series: pd.Series, sample: pd.Series) -> None:
    guess = detect_date_format(series)
    entry["date_format"] = guess.format if guess else ""
    entry["date_ambiguous"] = bool(guess and guess.ambiguous)
    # Text dates parse at a few microseconds each: min, max and histogram come from 20,000 rows.
    times = parse_dates(sample.head(DATE_ROWS), entry["date_format"] or None)
    if not (pd.api.types.is_datetime64_any_dtype(times) and times.notna().any()):
        return
    entry["min"] = str(times.min())
    entry["max"] = str(times.max())
    seconds = times.dropna().astype("datetime64[s]").astype("int64").to_numpy()
    counts, edges = np.histogram(seconds, bins=HIST_BINS)
    entry["histogram"] = {
        "counts": counts.tolist(),
        "edges": [pd.Timestamp(int(e), unit="s").isoformat() for e in edges],
    }
    if entry["date_format"]:
        entry["facts"].append(f"dates read as {entry['date_format']}")
    if entry["date_ambiguous"]:
        entry["facts"].append(
            "day / month order not decided by the data (read month first): "
            'name the format in the date_parts step if it is day first ("%d/%m/%Y")'
        )


def _epoch_facts(entry: dict, sample_values: np.ndarray, fmt: str) -> None:
    """A numeric column whose name says it holds Unix times: the dates it covers, as a fact."""
    times = parse_dates(pd.Series(sample_values), fmt)
    if times.notna().any():
        entry["date_format"] = fmt
        entry["facts"].append(
            f"Unix times ({fmt}) from {times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}: "
            f'a date_parts step with "format": "{fmt}" gives calendar parts'
        )
