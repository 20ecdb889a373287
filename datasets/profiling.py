"""Exploratory profile of a table: per column statistics, table-level checks, ranked warnings.

Pure pandas / numpy / scikit-learn. Exact counts (missing, unique, duplicates, top values,
min / max) use every row; shape statistics that a sample estimates well (histograms,
quantiles, correlations, outlier shares, single-feature leakage models) use a seeded random
sample of at most SAMPLE_ROWS rows, so a million-row upload profiles in about a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, ID_LIKE, NUMERIC, TEXT, infer_kind

SAMPLE_ROWS = 100_000
CORR_ROWS = 50_000
LEAK_ROWS = 20_000
HIST_BINS = 30
TOP_VALUES = 10
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _f(x: Any) -> float | None:
    """A JSON-safe float (NaN / inf -> None)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _sample(frame: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    idx = np.random.default_rng(seed).choice(len(frame), size=n, replace=False)
    idx.sort()
    return frame.iloc[idx]


def _warning(kind: str, column: str, severity: str, message: str, fix: str) -> dict:
    return {"kind": kind, "column": column, "severity": severity, "message": message, "fix": fix}


def _as_numeric(series: pd.Series, kind: str) -> pd.Series | None:
    if kind == NUMERIC:
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if kind == BOOLEAN:
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            return series.astype("float64")
        # Factorise first: mapping two distinct strings is cheap, mapping a million is not.
        m = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0, "t": 1.0, "f": 0.0}
        codes, uniques = pd.factorize(series)
        lookup = np.array([m.get(str(u).strip().lower(), np.nan) for u in uniques] + [np.nan])
        return pd.Series(lookup[codes], index=series.index, dtype="float64")
    return None


def _top_values(series: pd.Series, n: int, counts: pd.Series | None = None) -> list[dict]:
    counts = (series.value_counts(dropna=True) if counts is None else counts).head(n)
    total = len(series)
    return [{"value": str(k), "count": int(v), "share": _f(v / total)} for k, v in counts.items()]


def profile_column(name: str, series: pd.Series, sample: pd.Series, n: int) -> tuple[dict, dict]:
    """(profile entry, private numeric info used by table checks)."""
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
        "missing_share": _f(missing / n) if n else 0.0,
        "unique": unique,
        "unique_share": _f(unique / n) if n else 0.0,
    }
    info: dict[str, Any] = {}
    numeric = _as_numeric(series, kind) if kind in (NUMERIC, BOOLEAN) else None
    if numeric is not None and kind == NUMERIC:
        values = numeric.to_numpy()
        finite = values[np.isfinite(values)]
        s_values = _as_numeric(sample, kind).to_numpy()
        s_finite = s_values[np.isfinite(s_values)]
        if len(finite):
            q = np.percentile(s_finite, [1, 5, 25, 50, 75, 95, 99]) if len(s_finite) else [np.nan] * 7
            vmin, vmax = float(finite.min()), float(finite.max())
            entry.update(
                {
                    "min": _f(vmin),
                    "max": _f(vmax),
                    "mean": _f(finite.mean()),
                    "std": _f(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                    "quantiles": {
                        k: _f(v) for k, v in zip(("p1", "p5", "p25", "p50", "p75", "p95", "p99"), q, strict=True)
                    },
                    "zeros": int((finite == 0).sum()),
                }
            )
            counts, edges = np.histogram(s_finite, bins=min(HIST_BINS, max(1, unique)))
            entry["histogram"] = {"counts": counts.tolist(), "edges": [_f(e) for e in edges]}
            iqr = q[4] - q[2]
            lo, hi = q[2] - 1.5 * iqr, q[4] + 1.5 * iqr
            outliers = int(((finite < lo) | (finite > hi)).sum()) if iqr > 0 else 0
            entry["outliers"] = {
                "method": "iqr",
                "count": outliers,
                "share": _f(outliers / n),
                "low": _f(lo),
                "high": _f(hi),
            }
            at_max = int((finite == vmax).sum())
            at_min = int((finite == vmin).sum())
            entry["at_max"], entry["at_min"] = at_max, at_min
            info.update(values=numeric, sample_values=s_finite, at_max=at_max, at_min=at_min, vmax=vmax, vmin=vmin, q=q)
        entry["top_values"] = _top_values(series, 5) if unique <= 50 else []
    else:
        entry["top_values"] = _top_values(series, TOP_VALUES, counts)
        if kind == TEXT:
            lengths = sample.dropna().astype(str).str.len()
            entry["length"] = {"mean": _f(lengths.mean()), "max": _f(lengths.max())}
        if kind == DATETIME:
            times = parse_dates(sample)
            if pd.api.types.is_datetime64_any_dtype(times) and times.notna().any():
                entry["min"] = str(times.min())
                entry["max"] = str(times.max())
                counts, edges = np.histogram(times.dropna().astype("int64").to_numpy() // 10**9, bins=HIST_BINS)
                entry["histogram"] = {
                    "counts": counts.tolist(),
                    "edges": [pd.Timestamp(int(e), unit="s").isoformat() for e in edges],
                }
        if numeric is not None:
            entry["mean"] = _f(numeric.mean())
    return entry, info


def parse_dates(series: pd.Series) -> pd.Series:
    """ISO dates parse vectorised; only other spellings fall back to per-value parsing."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    parsed = pd.to_datetime(series, errors="coerce", format="ISO8601")
    if parsed.notna().sum() < 0.95 * series.notna().sum():
        parsed = pd.to_datetime(series, errors="coerce", format="mixed")
    return parsed


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    ca, ua = pd.factorize(a)
    cb, ub = pd.factorize(b)
    keep = (ca >= 0) & (cb >= 0)
    table = np.bincount(ca[keep] * len(ub) + cb[keep], minlength=len(ua) * len(ub)).reshape(len(ua), len(ub))
    table = table.astype(float)
    n = table.sum()
    if n == 0 or min(table.shape) < 2:
        return 0.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / np.where(expected == 0, 1, expected)).sum()
    r, k = table.shape
    return float(np.sqrt(chi2 / n / (min(r, k) - 1)))


def correlations(sample: pd.DataFrame, columns: list[dict]) -> dict:
    numeric = [c["name"] for c in columns if c["kind"] in (NUMERIC, BOOLEAN)]
    out: dict[str, Any] = {"numeric": None, "categorical": None}
    if len(numeric) >= 2:
        kinds = {c["name"]: c["kind"] for c in columns}
        matrix = np.column_stack([_as_numeric(sample[c], kinds[c]).to_numpy() for c in numeric])
        frame = pd.DataFrame(matrix, columns=numeric)
        corr = frame.corr(method="pearson", min_periods=10)
        out["numeric"] = {"columns": numeric, "matrix": [[_f(v) for v in row] for row in corr.to_numpy()]}
    cats = [c["name"] for c in columns if c["kind"] in (CATEGORICAL, BOOLEAN) and 2 <= c["unique"] <= 50][:15]
    if len(cats) >= 2:
        small = sample[cats].head(50_000)
        arrays = {c: small[c].to_numpy() for c in cats}
        m = np.eye(len(cats))
        for i in range(len(cats)):
            for j in range(i + 1, len(cats)):
                m[i, j] = m[j, i] = _cramers_v(arrays[cats[i]], arrays[cats[j]])
        out["categorical"] = {"columns": cats, "matrix": [[_f(v) for v in row] for row in m], "method": "cramers_v"}
    return out


def _leakage(sample: pd.DataFrame, columns: list[dict], target: str, task: str) -> list[dict]:
    """Features that alone predict the target almost perfectly, measured out of fold."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    warnings = []
    data = sample.dropna(subset=[target]).head(LEAK_ROWS)
    if len(data) < 30:
        return warnings
    y_raw = data[target]
    if task == "classification":
        y = y_raw.astype(str).to_numpy()
        counts = pd.Series(y).value_counts()
        if counts.min() < 3 or len(counts) < 2:
            return warnings
        baseline = counts.iloc[0] / len(y)
        model = DecisionTreeClassifier(max_depth=6, random_state=0)
        scoring = "accuracy"
    else:
        y = pd.to_numeric(y_raw, errors="coerce").to_numpy()
        keep = np.isfinite(y)
        data, y = data[keep], y[keep]
        if len(y) < 30 or np.std(y) == 0:
            return warnings
        baseline = 0.0
        model = DecisionTreeRegressor(max_depth=6, random_state=0)
        scoring = "r2"
    target_str = y_raw.astype(str).to_numpy() if task == "classification" else None
    for col in columns:
        name = col["name"]
        if name == target or col["kind"] in (TEXT,):
            continue
        s = data[name]
        # Identical to the target (possibly renamed or re-encoded one-to-one).
        if task == "classification":
            pairs = pd.DataFrame({"f": s.astype(str).to_numpy(), "t": target_str})
            if pairs.groupby("f")["t"].nunique().max() == 1 and pairs.groupby("t")["f"].nunique().max() == 1:
                warnings.append(
                    _warning(
                        "leakage_identical",
                        name,
                        "high",
                        f"{name!r} is the target {target!r} under another name: a model would learn nothing usable.",
                        f"Drop {name!r} in the recipe (drop_columns).",
                    )
                )
                continue
        if col["kind"] == ID_LIKE:
            continue  # reported separately
        if col["kind"] in (NUMERIC, BOOLEAN):
            x_num = _as_numeric(s, col["kind"])
            lowest = x_num.min()
            x = x_num.fillna((lowest if pd.notna(lowest) else 0.0) - 1.0).to_numpy()
        elif col["kind"] == DATETIME:
            x = parse_dates(s).astype("int64").to_numpy().astype(float)
        else:
            x = pd.Series(pd.factorize(s.astype(str))[0]).to_numpy().astype(float)
        try:
            score = float(np.mean(cross_val_score(model, x.reshape(-1, 1), y, cv=3, scoring=scoring)))
        except ValueError:
            continue
        if (task == "classification" and score >= 0.99 and baseline < 0.97) or (
            task != "classification" and score >= 0.98
        ):
            warnings.append(
                _warning(
                    "leakage_single_feature",
                    name,
                    "high",
                    f"{name!r} alone predicts {target!r} with {scoring} {score:.3f} (out of fold): it may be "
                    "recorded after the outcome (leakage).",
                    f"Check how {name!r} is collected; drop it in the recipe (drop_columns) if it is not known at prediction time.",
                )
            )
    return warnings


def profile_frame(
    frame: pd.DataFrame,
    *,
    target: str = "",
    task: str = "",
    hashes: np.ndarray | Callable[[], np.ndarray] | None = None,
) -> dict:
    """`hashes`: the row hashes, or a callable returning them (computed meanwhile elsewhere)."""
    """The whole profile: {"rows", "columns": [...], "table": {...}, "warnings": [...], "target": {...}}."""
    n = len(frame)
    sample = _sample(frame, SAMPLE_ROWS)
    columns: list[dict] = []
    infos: dict[str, dict] = {}
    for name in frame.columns:
        entry, info = profile_column(str(name), frame[name], sample[name], n)
        columns.append(entry)
        infos[str(name)] = info
    warnings: list[dict] = []

    if hashes is None:
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    elif callable(hashes):
        hashes = hashes()
    duplicates = int(n - len(pd.unique(hashes)))
    table: dict[str, Any] = {
        "rows": n,
        "columns": frame.shape[1],
        "duplicate_rows": duplicates,
        "duplicate_share": _f(duplicates / n) if n else 0.0,
        "missing_cells": int(sum(c["missing"] for c in columns)),
    }
    table["correlations"] = correlations(_sample(sample, CORR_ROWS, seed=1), columns)

    if duplicates:
        share = duplicates / n
        warnings.append(
            _warning(
                "duplicate_rows",
                "",
                "high" if share > 0.05 else "medium",
                f"{duplicates} rows ({share:.1%}) are exact duplicates of an earlier row.",
                "Add a drop_duplicates step to the recipe (training data only), before splitting if they are copies.",
            )
        )
    for c in columns:
        name = c["name"]
        if c["missing"] == n:
            warnings.append(
                _warning("empty_column", name, "high", f"{name!r} is empty.", f"Drop {name!r} (drop_columns).")
            )
            continue
        if c["missing"]:
            share = c["missing"] / n
            warnings.append(
                _warning(
                    "missing_values",
                    name,
                    "high" if share > 0.3 else ("medium" if share > 0.05 else "low"),
                    f"{name!r} has {c['missing']} missing values ({share:.1%}).",
                    f"Impute {name!r} in the recipe (impute: median / most_frequent / constant)"
                    + (" or drop it (drop_columns)." if share > 0.5 else "."),
                )
            )
        if c["unique"] == 1:
            warnings.append(
                _warning(
                    "constant",
                    name,
                    "medium",
                    f"{name!r} has a single value: it carries no information.",
                    f"Drop {name!r} (drop_columns).",
                )
            )
        if c["kind"] == ID_LIKE:
            warnings.append(
                _warning(
                    "id_like",
                    name,
                    "medium",
                    f"{name!r} looks like an identifier (unique per row): models memorise ids instead of learning (leakage suspect).",
                    f"Drop {name!r} (drop_columns); the auto recipe drops id-like columns.",
                )
            )
        if c["kind"] == CATEGORICAL and c["unique"] > 100:
            warnings.append(
                _warning(
                    "high_cardinality",
                    name,
                    "low",
                    f"{name!r} has {c['unique']} categories.",
                    f"Encode {name!r} as ordinal, or one-hot with rare categories grouped (the default groups categories under 5 rows).",
                )
            )
        info = infos.get(name) or {}
        if c["kind"] == NUMERIC and info:
            out = c.get("outliers", {})
            if out.get("count") and out["share"] > 0.01:
                warnings.append(
                    _warning(
                        "outliers",
                        name,
                        "medium" if out["share"] > 0.05 else "low",
                        f"{name!r} has {out['count']} values ({out['share']:.1%}) outside 1.5 IQR "
                        f"[{out['low']:.4g}, {out['high']:.4g}].",
                        f"Add remove_outliers on {name!r} (IQR or z-score, training data only), or a robust scaler.",
                    )
                )
            capped = _capped(c, info, n)
            if capped:
                warnings.append(capped)
            if c.get("std") and c.get("quantiles", {}).get("p50") is not None:
                skew = _skew(info["sample_values"])
                c["skew"] = _f(skew)
                if skew is not None and abs(skew) > 2:
                    warnings.append(
                        _warning(
                            "skewed",
                            name,
                            "low",
                            f"{name!r} is strongly skewed (skewness {skew:.1f}).",
                            "Use a robust scaler, or derive a log / ratio column.",
                        )
                    )
    names = [c["name"] for c in columns]
    target_info: dict[str, Any] | None = None
    if target and target in frame.columns:
        y = frame[target]
        tcol = next(c for c in columns if c["name"] == target)
        if not task:
            task = "classification" if tcol["kind"] in (CATEGORICAL, BOOLEAN) or tcol["unique"] <= 20 else "regression"
        target_info = {"column": target, "task": task, "missing": int(y.isna().sum())}
        if task == "classification":
            counts = y.astype(str).where(y.notna(), None).value_counts()
            target_info["classes"] = [{"value": str(k), "count": int(v)} for k, v in counts.head(50).items()]
            if len(counts) < 2:
                warnings.append(
                    _warning(
                        "single_class",
                        target,
                        "high",
                        f"The target {target!r} has a single class ({counts.index[0]!r} if any): nothing to classify.",
                        "Collect examples of the other class(es), or choose another target.",
                    )
                )
            else:
                minority = counts.iloc[-1] / counts.sum()
                ratio = counts.iloc[0] / max(1, counts.iloc[-1])
                target_info["imbalance_ratio"] = _f(ratio)
                if ratio >= 3:
                    warnings.append(
                        _warning(
                            "class_imbalance",
                            target,
                            "high" if ratio >= 20 else "medium",
                            f"Class {counts.index[-1]!r} is {minority:.1%} of the rows (majority:minority {ratio:.0f}:1): "
                            "accuracy will flatter the model.",
                            "Split stratified (the default), judge by F1 / PR AUC / balanced accuracy, use class weights, "
                            "tune the decision threshold.",
                        )
                    )
        else:
            target_info["histogram"] = next(c for c in columns if c["name"] == target).get("histogram")
        if target_info.get("missing"):
            warnings.append(
                _warning(
                    "target_missing",
                    target,
                    "medium",
                    f"{target_info['missing']} rows have no target value.",
                    "Rows without a target are ignored in training; label them or drop them.",
                )
            )
        warnings.extend(_leakage(sample, columns, target, task))
    for w in warnings:
        w.setdefault("split", "")
    warnings.sort(
        key=lambda w: (SEVERITY_ORDER.get(w["severity"], 3), names.index(w["column"]) if w["column"] in names else -1)
    )
    return {
        "rows": n,
        "columns": columns,
        "table": table,
        "target": target_info,
        "warnings": warnings,
        "sample_rows": len(sample),
    }


def _skew(v: np.ndarray) -> float | None:
    if len(v) < 3:
        return None
    d = v - v.mean()
    std = float(np.sqrt(np.dot(d, d) / len(d)))
    return float(np.dot(d * d, d) / len(d) / std**3) if std > 0 else None


def _capped(c: dict, info: dict, n: int) -> dict | None:
    """A spike at the maximum (or minimum) of a continuous column: values clipped at a cap.

    The seeds' housing data caps median income at 15 and house value at 500,001: hundreds of
    rows sit exactly on the max while the neighbouring values are rare.
    """
    if c["unique"] < 20 or not n:
        return None
    non_missing = n - c["missing"]
    typical = non_missing / c["unique"]  # rows per distinct value, on average
    for end, count, value in (("max", info["at_max"], info["vmax"]), ("min", info["at_min"], info["vmin"])):
        share = count / max(1, non_missing)
        if count >= 10 and share >= 0.005 and count >= 10 * typical:
            name = c["name"]
            if end == "min" and value == 0:
                continue  # many zeros is usually a real value (counts, amounts), reported as zeros
            return _warning(
                "capped",
                name,
                "medium",
                f"{name!r} looks capped at its {end} {value:.6g}: {count} rows ({share:.1%}) sit exactly there.",
                f"Drop the capped rows with remove_outliers on {name!r}, or keep them and tell the model "
                "(the true values beyond the cap are unknown).",
            )
    return None
