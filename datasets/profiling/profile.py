"""The whole profile of a table: column facts, table checks, ranked warnings.

Exact counts (missing, unique, duplicates, top values, min / max) use every row; shape
statistics that a sample estimates well (histograms, quantiles, correlations, outlier shares,
leak measures) use a seeded random sample of at most SAMPLE_ROWS rows, so a million-row upload
profiles in about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from datasets.kinds import BOOLEAN, CATEGORICAL, ID_LIKE, NUMERIC

from .columns import profile_column
from .common import as_numeric, json_float, sample_rows
from .leak_warnings import leak_warnings
from .plausibility import credit_context, impossible_warning
from .target import infer_task, target_checks
from .values import capped_warning, extreme_warning, sentinel_warning
from .warnings import rank, warning

SAMPLE_ROWS = 100_000
CORR_ROWS = 50_000
MISSING_WARN_SHARE = 0.05


def profile_frame(
    frame: pd.DataFrame,
    *,
    target: str = "",
    task: str = "",
    hashes: np.ndarray | Callable[[], np.ndarray] | None = None,
    objective: str = "",
) -> dict:
    """{"rows", "columns": [...], "table": {...}, "target": {...}, "warnings": [...], "sample_rows"}.

    `hashes`: the row hashes, or a callable returning them (computed meanwhile elsewhere).
    `objective`: the project's objective, read for domain words (credit data: adult ages).
    """
    n = len(frame)
    sample = sample_rows(frame, SAMPLE_ROWS)
    columns: list[dict] = []
    infos: dict[str, dict] = {}
    for name in frame.columns:
        entry, info = profile_column(str(name), frame[name], sample[name], n)
        columns.append(entry)
        infos[str(name)] = info
    names = [c["name"] for c in columns]
    table = _table(frame, sample, columns, hashes)
    warnings = _duplicates(table, n)
    credit = credit_context(names, objective)
    for c in columns:
        warnings += _column_warnings(c, infos[c["name"]], n, is_target=c["name"] == target, credit=credit)
    target_info: dict[str, Any] | None = None
    if target and target in frame.columns:
        tcol = columns[names.index(target)]
        task = task or infer_task(tcol)
        target_info, found = target_checks(frame[target], tcol, task, infos[target])
        warnings += found
        warnings += leak_warnings(sample, columns, target, task, total_rows=int(frame[target].notna().sum()))
    return {
        "rows": n,
        "columns": columns,
        "table": table,
        "target": target_info,
        "warnings": rank(warnings, names),
        "sample_rows": len(sample),
    }


def _table(
    frame: pd.DataFrame, sample: pd.DataFrame, columns: list[dict], hashes: np.ndarray | Callable | None
) -> dict[str, Any]:
    n = len(frame)
    if hashes is None:
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    elif callable(hashes):
        hashes = hashes()
    duplicates = int(n - len(pd.unique(hashes)))
    return {
        "rows": n,
        "columns": frame.shape[1],
        "duplicate_rows": duplicates,
        "duplicate_share": json_float(duplicates / n) if n else 0.0,
        "missing_cells": int(sum(c["missing"] for c in columns)),
        "correlations": correlations(sample_rows(sample, CORR_ROWS, seed=1), columns),
    }


def _duplicates(table: dict, n: int) -> list[dict]:
    duplicates = table["duplicate_rows"]
    if not duplicates:
        return []
    share = duplicates / n
    return [
        warning(
            "duplicate_rows",
            "",
            "high" if share > 0.05 else "medium",
            f"{duplicates} rows ({share:.1%}) are exact duplicates of an earlier row.",
            "Add a drop_duplicates step to the recipe (training data only), before splitting if they are copies.",
            score=share,
        )
    ]


def _column_warnings(c: dict, info: dict, n: int, *, is_target: bool, credit: list[str]) -> list[dict]:
    name = c["name"]
    if c["missing"] == n:
        return [warning("empty_column", name, "high", f"{name!r} is empty.", f"Drop {name!r} (drop_columns).")]
    out: list[dict] = []
    share = c["missing"] / n
    # Under 5% missing, the default recipe's imputation is what anyone would do: a column fact.
    # A target's missing rows have their own warning; a constant column is to be dropped anyway.
    if share >= MISSING_WARN_SHARE and not is_target and c["unique"] > 1:
        out.append(
            warning(
                "missing_values",
                name,
                "high" if share > 0.3 else "medium",
                f"{name!r} has {c['missing']} missing values ({share:.1%}).",
                f"Impute {name!r} in the recipe (impute: median / most_frequent / constant)"
                + (" or drop it (drop_columns)." if share > 0.5 else ".")
                + " If a blank means something (never delinquent, no co-applicant), impute a constant so the "
                "model can tell those rows apart.",
                score=share,
            )
        )
    if c["unique"] == 1:
        out.append(
            warning(
                "constant",
                name,
                "medium",
                f"{name!r} has a single value: it carries no information.",
                f"Drop {name!r} (drop_columns).",
            )
        )
    if c["kind"] == ID_LIKE:
        out.append(
            warning(
                "id_like",
                name,
                "medium",
                f"{name!r} looks like an identifier (unique per row): models memorise ids instead of learning (leakage suspect).",
                f"Drop {name!r} (drop_columns); the auto recipe drops id-like columns.",
            )
        )
    if c["kind"] == CATEGORICAL and c["unique"] > 100 and not is_target:
        out.append(
            warning(
                "high_cardinality",
                name,
                "low",
                f"{name!r} has {c['unique']} categories.",
                f"Encode {name!r} as ordinal, or one-hot with rare categories grouped (the default groups categories under 5 rows).",
            )
        )
    if c["kind"] == NUMERIC and info.get("finite") is not None and len(info["finite"]):
        out += _value_warnings(c, info, is_target=is_target, credit=credit)
    return out


def _value_warnings(c: dict, info: dict, *, is_target: bool, credit: list[str]) -> list[dict]:
    # Each odd value is reported once, under its most telling name: a code for unknown (999 in
    # an age), else an impossible value, else an extreme one.
    sentinel = None if is_target else sentinel_warning(c, info)
    code = sentinel["details"]["value"] if sentinel else None
    finite = info["finite"] if code is None else info["finite"][info["finite"] != code]
    impossible = impossible_warning(c, finite, credit) if len(finite) else None
    found = [sentinel, impossible]
    if not is_target:  # the target's cap and tail are read as target problems (target.py)
        found.append(capped_warning(c, info))
        if impossible is None:
            found.append(extreme_warning(c, info, exclude=code))
    return [w for w in found if w is not None]


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
        matrix = np.column_stack([as_numeric(sample[c], kinds[c]).to_numpy() for c in numeric])
        corr = pd.DataFrame(matrix, columns=numeric).corr(method="pearson", min_periods=10)
        out["numeric"] = {"columns": numeric, "matrix": [[json_float(v) for v in row] for row in corr.to_numpy()]}
    cats = [c["name"] for c in columns if c["kind"] in (CATEGORICAL, BOOLEAN) and 2 <= c["unique"] <= 50][:15]
    if len(cats) >= 2:
        small = sample[cats].head(50_000)
        arrays = {c: small[c].to_numpy() for c in cats}
        m = np.eye(len(cats))
        for i in range(len(cats)):
            for j in range(i + 1, len(cats)):
                m[i, j] = m[j, i] = _cramers_v(arrays[cats[i]], arrays[cats[j]])
        out["categorical"] = {
            "columns": cats,
            "matrix": [[json_float(v) for v in row] for row in m],
            "method": "cramers_v",
        }
    return out
