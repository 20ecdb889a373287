"""Values a data scientist acts on: caps, codes for "unknown", extreme entries, impossible values.

Skew and a share outside 1.5 IQR are column facts, not warnings: on real data they are the
rule (45 of one set's 57 warnings were those), and a tree ensemble does not care. A warning
fires only when the values change what a model learns:

- `capped`: a spike exactly at the max (or a non-zero min): values beyond a limit were written
  as the limit (the loans' amount capped at 40,000; the seeds' median income at 15);
- `sentinel_values`: 999 / 9999 / -1 ... standing apart from every other value: a code for
  "unknown" that a model would read as a number;
- `extreme_values`: a handful of values (at most 10, or 0.1% of the rows) more than ten widths
  of the 1st-99th percentile range beyond it, and standing apart from every other value (a gap
  of five widths): typing errors, mixed units. Values that thin out gradually are a heavy tail,
  a fact of the column (its skew), not a warning;
- `impossible_values`: a small documented rule set on named quantities (`plausibility.py`).
"""

from __future__ import annotations

import numpy as np

from .common import fmt_number
from .warnings import warning

SPIKE_MIN_ROWS = 5
SPIKE_MIN_SHARE = 0.005
SPIKE_RATIO = 5.0  # rows at the end vs rows per value among its neighbours
NEIGHBOURS_SHARE = 0.05
NATURAL_CEILINGS = (1.0, 100.0)
SENTINELS = (-1, -9, -99, -999, -9999, -99999, 99, 999, 9999, 99999, 999999, 9999999, 99999999)
EXTREME_SPREADS = 10.0  # beyond 10 (p99 - p1) from the 1st-99th percentile range
EXTREME_FACTOR_POSITIVE = 100.0  # or, for a positive quantity, under 1/100 of its 1st percentile
ISOLATION_SPREADS = 5.0  # and at least 5 (p99 - p1) away from every other value
HANDFUL_SHARE = 0.001
HANDFUL_MIN = 10
LINEAR_MODELS = "linear and logistic regression, SVMs, k-NN and neural networks"


def end_spike(finite: np.ndarray, unique: int) -> tuple[str, float, int, float] | None:
    """(end, value, rows there, rows per value nearby) when one end of the column is a spike."""
    n = len(finite)
    if unique < 20 or n < 50:
        return None
    window = max(20, int(NEIGHBOURS_SHARE * n))
    for end, value in (("max", finite.max()), ("min", finite.min())):
        at = finite == value
        count = int(np.count_nonzero(at))
        # Most columns stop here: a continuous column has one row at each end.
        if count < SPIKE_MIN_ROWS or count < SPIKE_MIN_SHARE * n:
            continue
        rest = finite[~at]
        if len(rest) <= window:
            near = rest
        else:  # the `window` values next to the end, without sorting a million values
            k = len(rest) - window if end == "max" else window
            near = np.partition(rest, k)[k:] if end == "max" else np.partition(rest, k - 1)[:k]
        if not len(near):
            continue
        per_value = len(near) / len(np.unique(near))
        if count >= SPIKE_RATIO * per_value:
            return end, float(value), count, per_value
    return None


def capped_warning(c: dict, info: dict) -> dict | None:
    spike = end_spike(info["finite"], c["unique"])
    if spike is None:
        return None
    end, value, count, per_value = spike
    if end == "min" and value == 0:
        return None  # many zeros is usually a real value (counts, amounts), reported as zeros
    name = c["name"]
    share = count / len(info["finite"])
    c["capped"] = {"end": end, "value": value, "rows": count}
    if end == "max" and value in NATURAL_CEILINGS and c.get("min", -1) >= 0:
        # 100 (percent) or 1 (share): a ceiling of the quantity itself, nothing lies beyond.
        c["facts"].append(f"{count} rows at {fmt_number(value)}, its natural ceiling")
        return None
    c["facts"].append(f"capped at its {end} {fmt_number(value)} ({count} rows)")
    return warning(
        "capped",
        name,
        "low",
        f"{name!r} looks capped at its {end} {fmt_number(value)}: {count} rows ({share:.1%}) sit exactly there, "
        f"against about {per_value:.0f} per value just {'below' if end == 'max' else 'above'}. The true values "
        "beyond the cap are unknown.",
        "Usually nothing to do: tree models treat the cap as one more value. For linear models, an "
        f"indicator column '{name} at cap' helps. Remove rows only if the cap is an error.",
        score=share,
        details={"end": end, "value": value, "rows": count},
    )


def sentinel_warning(c: dict, info: dict) -> dict | None:
    finite = info["finite"]
    if c["unique"] < 3:
        return None
    # A code that stands apart is the column's max (999...) or its min (-1...): only those are tried.
    for code in {info["vmax"], info["vmin"]} & set(SENTINELS):
        at = finite == code
        count = int(at.sum())
        if count < 2 or count > 0.5 * len(finite):
            continue
        rest = finite[~at]
        if not len(rest):
            continue
        # A code stands apart: the only negative value of a non-negative column, or at least
        # twice every other value.
        apart = (code < 0 and rest.min() >= 0) or (code > 0 and code >= 2 * max(rest.max(), 1e-9))
        if not apart:
            continue
        name = c["name"]
        where = f"while every other value is {'>= 0' if code < 0 else f'<= {fmt_number(float(rest.max()))}'}"
        c["facts"].append(f"{fmt_number(code)} looks like a code for unknown ({count} rows)")
        return warning(
            "sentinel_values",
            name,
            "medium",
            f"{name!r} holds {fmt_number(code)} in {count} rows ({count / len(finite):.1%}) {where}: most likely a "
            "code for 'unknown' or 'not applicable', not a measurement.",
            f"Replace {fmt_number(code)} with a blank at the source (or in a new version), then impute "
            f"{name!r}; as a number it bends {LINEAR_MODELS}, and moves tree splits.",
            score=count / len(finite),
            details={"value": code, "rows": count},
        )
    return None


def extreme_warning(c: dict, info: dict, *, exclude: float | None = None) -> dict | None:
    """A handful of values far beyond the 1st-99th percentile range and apart from the rest.

    `exclude`: a code already reported as a sentinel.
    """
    finite, q = info["finite"], info["q"]
    p1, p99 = float(q[0]), float(q[6])
    spread = p99 - p1
    if not len(finite) or not np.isfinite(spread) or spread <= 0:
        return None
    top, bottom = p99 + EXTREME_SPREADS * spread, p1 - EXTREME_SPREADS * spread
    floor = p1 / EXTREME_FACTOR_POSITIVE if p1 > 0 else bottom
    if info["vmax"] <= top and info["vmin"] >= bottom and (p1 <= 0 or info["vmin"] <= 0 or info["vmin"] >= floor):
        return None  # nothing out there: skip the passes over every row
    high = finite > top
    low = finite < bottom
    if p1 > 0:  # a positive quantity: also two orders of magnitude below it (an income of 1)
        low |= (finite > 0) & (finite < floor)
    if exclude is not None:
        high &= finite != exclude
        low &= finite != exclude
    bulk = finite[~(high | low)]
    if not len(bulk):
        return None
    # A heavy tail thins out gradually; a typing error stands apart from every other value.
    if high.any() and finite[high].min() - bulk.max() < ISOLATION_SPREADS * spread:
        high[:] = False
    if low.any() and bulk.min() - finite[low].max() < min(ISOLATION_SPREADS * spread, 0.9 * bulk.min()):
        low[:] = False
    far = high | low
    count = int(far.sum())
    if count == 0 or count > max(HANDFUL_MIN, HANDFUL_SHARE * len(finite)):
        return None  # none, or a heavy tail (a fact of the column, see its skew)
    name = c["name"]
    median = float(np.median(finite))
    deviations = (finite - median) ** 2
    weight = float(deviations[far].sum() / max(deviations.sum(), 1e-300))
    examples = ", ".join(fmt_number(float(v)) for v in np.unique(finite[far])[:3])
    c["facts"].append(f"{count} extreme value(s): {examples}")
    return warning(
        "extreme_values",
        name,
        "medium" if weight > 0.5 else "low",
        f"{name!r} has {count} value(s) ({examples}) far outside the range of the rest (1st-99th percentiles "
        f"{fmt_number(p1)} to {fmt_number(p99)}): typing errors, mixed units or codes? They make up {weight:.0%} "
        "of the column's variance.",
        f"Check those rows at the source and fix or blank them. If they are real, they matter for {LINEAR_MODELS} "
        "(a robust scaler, or a log column, tames them); tree ensembles hardly notice.",
        score=weight,
        details={"rows": count, "variance_share": weight},
    )
