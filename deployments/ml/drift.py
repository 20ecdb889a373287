"""Drift statistics against a precomputed training reference (pure numpy / scipy, no Django).

The reference is built once (`numeric_reference`, `categorical_reference`) when a model is
registered, so a snapshot never re-reads or re-sorts the training data:
- numeric: 10 bins with edges at the training deciles (PSI on equal-mass bins is the industry
  convention and keeps every expected share near 0.1), the training share of each bin, and a
  sorted (sub)sample for the KS test and Wasserstein distance;
- categorical: the training share of each category; values never seen in training form their
  own bucket (a new category is drift, not noise to drop).

Verdicts (`status_for`, `statuses_assign`): below `min_samples` rows "insufficient" (not enough
data yet); otherwise "alert" only when the test (KS for numeric, chi-square for categorical) is
significant after a Holm correction over the window's features AND the PSI is past `psi_alert`
("warn" past `psi_warn`). PSI alone on a few dozen rows is mostly sampling noise.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

N_BINS = 10
# Empty bins would make PSI infinite (log of zero); a small floor is the usual fix.
EPSILON = 1e-4
UNSEEN = "__unseen__"
MISSING = "__missing__"
MAX_SORTED_SAMPLE = 100_000


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    n_reference: int
    n_current: int
    psi: float | None = None
    test: str = ""  # ks | chi2
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm over the window's features (the p-value the verdict used)
    wasserstein: float | None = None  # numeric, normalised by the reference's standard deviation
    jensen_shannon: float | None = None
    status: str = "ok"  # ok | warn | alert | insufficient
    # For the overlay chart: bin labels with reference and current shares.
    labels: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if np.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------- reference building


def quantile_edges(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Inner bin edges at the training quantiles (duplicates dropped for discrete features)."""
    if values.size == 0:
        return np.array([], dtype=float)
    qs = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def bin_shares(values: np.ndarray, edges: np.ndarray, *, is_sorted: bool = False) -> np.ndarray:
    """Share of `values` in each bin (-inf, e1], (e1, e2], ..., (ek, inf). Sorted values are
    counted with one search per edge instead of one per value."""
    if is_sorted:
        cuts = np.searchsorted(values, edges, side="right")
        counts = np.diff(np.concatenate([[0], cuts, [values.size]]))
        total = counts.sum()
        return counts / total if total else counts.astype(float)
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def numeric_reference(values: np.ndarray, *, max_sample: int = MAX_SORTED_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """JSON part (edges, shares, moments) and the sorted sample (returned separately: it is large)."""
    v = np.asarray(values, dtype=float)
    n_total = v.size
    v = v[np.isfinite(v)]
    edges = quantile_edges(v)
    sample = v
    if v.size > max_sample:
        sample = np.random.default_rng(seed).choice(v, size=max_sample, replace=False)
    ref = {
        "type": "numeric",
        "n": int(v.size),
        "missing_rate": float(1 - v.size / n_total) if n_total else 0.0,
        "edges": edges.tolist(),
        "shares": bin_shares(v, edges).tolist(),
        "min": float(v.min()) if v.size else None,
        "max": float(v.max()) if v.size else None,
        "mean": float(v.mean()) if v.size else None,
        "std": float(v.std()) if v.size else None,
    }
    return {"json": ref, "sorted": np.sort(sample)}


def categorical_reference(values: Any) -> dict[str, Any]:
    # Counting distinct values first (a hash count in C) and formatting only the distinct ones
    # is much faster than converting a million values to text.
    raw = Counter(values.tolist() if isinstance(values, np.ndarray) else list(values))
    n_total = sum(raw.values())
    counts: dict[str, int] = {}
    for value, count in raw.items():
        if _is_missing(value):
            continue
        key = _category(value)
        counts[key] = counts.get(key, 0) + count
    present = sum(counts.values())
    return {
        "type": "categorical",
        "n": int(present),
        "missing_rate": float(1 - present / n_total) if n_total else 0.0,
        "shares": {c: counts[c] / present for c in sorted(counts)},
    }


def category_text(value: Any) -> str:
    """The public name of `_category` (the columnar store and the window merge use it)."""
    return _category(value)


def _category(value: Any) -> str:
    """One text form per category, the same for training values, JSON inputs and SQL extraction."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # 1.0 from a float column and 1 from JSON are the same category
    return str(value)


def _is_missing(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, float) and np.isnan(x):
        return True
    return isinstance(x, str) and x == ""


# ---------------------------------------------------------------- statistics


def psi(reference_shares: np.ndarray, current_shares: np.ndarray, eps: float = EPSILON) -> float:
    """Population stability index: sum((cur - ref) * ln(cur / ref)), with a floor on empty bins."""
    r = np.clip(np.asarray(reference_shares, dtype=float), eps, None)
    c = np.clip(np.asarray(current_shares, dtype=float), eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two binned distributions."""
    r = np.asarray(reference_shares, dtype=float)
    c = np.asarray(current_shares, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return float("nan")
    r = r / r.sum()
    c = c / c.sum()
    m = 0.5 * (r + c)

    def kl(p: np.ndarray, q: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / q[nz])))

    return float(np.sqrt(max(0.5 * kl(r, m) + 0.5 * kl(c, m), 0.0)))


def ks_sorted(reference_sorted: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and asymptotic p-value, the reference already sorted.

    The ECDFs are evaluated at every point of both samples with `searchsorted`, which gives the
    same D as `scipy.stats.ks_2samp`; the p-value is scipy's asymptotic one (Kolmogorov
    distribution with the effective sample size n*m/(n+m)), as ks_2samp(method="asymp").
    """
    ref = np.asarray(reference_sorted, dtype=float)
    cur = np.sort(np.asarray(current, dtype=float))
    n, m = ref.size, cur.size
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    points = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, points, side="right") / n
    cdf_cur = np.searchsorted(cur, points, side="right") / m
    d = float(np.max(np.abs(cdf_ref - cdf_cur)))
    en = n * m / (n + m)
    p = float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return d, p


def ks_wasserstein(reference_sorted: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """KS statistic, its asymptotic p-value and the Wasserstein distance in one pass.

    Both samples are sorted (the reference in advance; `current` is sorted here unless it is
    already), their union is sorted by merging two runs (timsort: linear) and the two ECDFs are
    running counts along it, read at the last point of each group of equal values (so ties
    count as `searchsorted(side="right")` counts them). Linear after the sort, no binary search
    per point: a million-row window costs a sort. Same results as
    `scipy.stats.ks_2samp(method="asymp")` and `scipy.stats.wasserstein_distance`.
    """
    ref = np.asarray(reference_sorted, dtype=float)
    cur = np.asarray(current, dtype=float)
    if cur.size > 1 and not bool(np.all(cur[1:] >= cur[:-1])):
        cur = np.sort(cur)
    n, m = ref.size, cur.size
    if n == 0 or m == 0:
        return float("nan"), float("nan"), float("nan")
    both = np.concatenate([ref, cur])
    order = np.argsort(both, kind="stable")
    points = both[order]
    from_ref = order < n
    cdf_ref = np.cumsum(from_ref) / n
    cdf_cur = np.cumsum(~from_ref) / m
    ends = np.empty(points.size, dtype=bool)  # the last point of each run of equal values
    np.not_equal(points[1:], points[:-1], out=ends[:-1])
    ends[-1] = True
    gap = np.abs(cdf_ref[ends] - cdf_cur[ends])
    d = float(gap.max())
    p = float(np.clip(stats.kstwo.sf(d, np.round(n * m / (n + m))), 0.0, 1.0))
    w = float(np.sum(gap[:-1] * np.diff(points[ends])))
    return d, p, w


def wasserstein_sorted(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """Earth mover's distance between the two empirical distributions (scipy's definition)."""
    if reference_sorted.size == 0 or current.size == 0:
        return float("nan")
    return float(stats.wasserstein_distance(reference_sorted, current))


def alert_threshold(n: int, bins: int, *, psi_warn: float, psi_alert: float) -> float:
    """The PSI a significant drift must reach to alert, on `n` rows and `bins` bins.

    A PSI estimated from n rows scatters around the true one with a standard deviation of about
    sqrt(2(bins - 1) + 4 n psi) / n (n PSI is about a noncentral chi-square with bins - 1 degrees
    of freedom). Once the test says the distribution moved, a drift within one such standard
    deviation of `psi_alert` is not told apart from an alert-sized one: it alerts. On 300 rows
    the threshold is about 0.15, on 10,000 rows 0.19; never below `psi_warn`.
    """
    if n <= 0:
        return psi_alert
    spread = np.sqrt(2 * max(bins - 1, 1) + 4 * n * psi_alert) / n
    return float(max(psi_warn, psi_alert - spread))


def status_for(
    psi_value: float | None,
    *,
    psi_warn: float,
    psi_alert: float,
    p_value: float | None = None,
    alpha: float | None = None,
    n: int | None = None,
    bins: int | None = None,
) -> str:
    """A feature's verdict from its effect size (PSI) and, when `alpha` is given, its significance.

    Effect size alone is noise at small volumes (30 rows on 10 bins give PSI 0.3 by chance, an
    empty bin alone adds 0.7), so a drift is reported only when the test against the training
    reference is significant at `alpha` (already corrected for the number of features tested:
    `holm`) AND the PSI is past the threshold (`alert_threshold` when `n` and `bins` are given).
    """
    if psi_value is None or not np.isfinite(psi_value):
        return "insufficient"
    if alpha is not None and (p_value is None or not np.isfinite(p_value) or p_value > alpha):
        return "ok"
    limit = psi_alert if n is None or bins is None else alert_threshold(n, bins, psi_warn=psi_warn, psi_alert=psi_alert)
    if psi_value > limit:
        return "alert"
    if psi_value > psi_warn:
        return "warn"
    return "ok"


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the features of one window).

    Compare each adjusted value with alpha: P(any false alarm among k in-distribution features)
    stays <= alpha. Missing p-values stay None and do not count in the family.
    """
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None and np.isfinite(p))
    out: list[float | None] = [None] * len(p_values)
    k = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (k - rank) * p))
        out[i] = running
    return out


def statuses_assign(
    results: list[FeatureDrift], *, alpha: float, psi_warn: float, psi_alert: float
) -> list[FeatureDrift]:
    """Set each result's status from its PSI and its Holm-adjusted p-value over `results`."""
    adjusted = holm([r.p_value if r.status != "insufficient" else None for r in results])
    for r, p_adj in zip(results, adjusted, strict=True):
        r.p_adjusted = p_adj
        if r.status == "insufficient":
            continue
        r.status = status_for(
            r.psi,
            psi_warn=psi_warn,
            psi_alert=psi_alert,
            p_value=p_adj,
            alpha=alpha,
            n=r.n_current,
            bins=len(r.reference_shares),
        )
    return results


def numeric_drift(
    feature: str,
    reference: dict[str, Any],
    reference_sorted: np.ndarray | None,
    current: np.ndarray,
    *,
    psi_warn: float = 0.1,
    psi_alert: float = 0.2,
    min_samples: int = 100,
    alpha: float = 0.01,
) -> FeatureDrift:
    cur = np.asarray(current, dtype=float)
    cur = np.sort(cur[np.isfinite(cur)])  # sorted once: the bins and the KS test read it sorted
    edges = np.asarray(reference["edges"], dtype=float)
    ref_shares = np.asarray(reference["shares"], dtype=float)
    result = FeatureDrift(feature, "numeric", int(reference.get("n", 0)), int(cur.size), test="ks")
    result.labels = _bin_labels(edges)
    result.reference_shares = ref_shares.tolist()
    if cur.size < min_samples or ref_shares.size == 0:
        result.status = "insufficient"
        return result
    cur_shares = bin_shares(cur, edges, is_sorted=True)
    result.current_shares = cur_shares.tolist()
    result.psi = psi(ref_shares, cur_shares)
    result.jensen_shannon = jensen_shannon(ref_shares, cur_shares)
    if reference_sorted is not None and reference_sorted.size:
        result.statistic, result.p_value, w = ks_wasserstein(reference_sorted, cur)
        std = reference.get("std") or 0.0
        result.wasserstein = w / std if std > 0 else w
    else:  # no sorted sample: the chi-square test of the bin counts against the training shares
        result.test = "chi2"
        result.statistic, result.p_value = chi_square(cur_shares * cur.size, ref_shares)
    result.status = status_for(
        result.psi,
        psi_warn=psi_warn,
        psi_alert=psi_alert,
        p_value=result.p_value,
        alpha=alpha,
        n=result.n_current,
        bins=len(result.reference_shares),
    )
    return result


def _bin_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all"]
    fmt = [f"{e:.4g}" for e in edges]
    return [f"≤ {fmt[0]}"] + [f"{a} to {b}" for a, b in itertools.pairwise(fmt)] + [f"> {fmt[-1]}"]


def categorical_counts(values: Any, known: set[str]) -> dict[str, int]:
    """Counts per category, unseen categories pooled under UNSEEN, missing values dropped.

    `values` is the column, or already its counts {value: n} (the columnar store counts in Arrow)."""
    try:
        raw = Counter(values)
    except TypeError:  # an unhashable value (a list or object sent as a feature): count its text
        raw = Counter(v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for v in values)
    counts: dict[str, int] = {}
    for value, count in raw.items():
        if _is_missing(value):
            continue
        key = _category(value)
        if key not in known:
            key = UNSEEN
        counts[key] = counts.get(key, 0) + count
    return counts


def categorical_drift(
    feature: str,
    reference: dict[str, Any],
    current: Any,
    *,
    psi_warn: float = 0.1,
    psi_alert: float = 0.2,
    min_samples: int = 100,
    alpha: float = 0.01,
    counts: dict[str, int] | None = None,
) -> FeatureDrift:
    ref_map: dict[str, float] = reference["shares"]
    cats = sorted(ref_map)
    if counts is None:
        counts = categorical_counts(current, set(cats))
    n = int(sum(counts.values()))
    labels = [*cats, UNSEEN]
    ref_shares = np.array([ref_map[c] for c in cats] + [0.0])
    cur_counts = np.array([counts.get(c, 0) for c in labels], dtype=float)
    result = FeatureDrift(feature, "categorical", int(reference.get("n", 0)), n, test="chi2")
    result.labels = labels
    result.reference_shares = ref_shares.tolist()
    if n < min_samples or not cats:
        result.status = "insufficient"
        return result
    cur_shares = cur_counts / n
    result.current_shares = cur_shares.tolist()
    result.psi = psi(ref_shares, cur_shares)
    result.jensen_shannon = jensen_shannon(ref_shares, cur_shares)
    result.statistic, result.p_value = chi_square(cur_counts, ref_shares)
    result.status = status_for(
        result.psi,
        psi_warn=psi_warn,
        psi_alert=psi_alert,
        p_value=result.p_value,
        alpha=alpha,
        n=result.n_current,
        bins=len(result.reference_shares),
    )
    return result


def chi_square(observed_counts: np.ndarray, reference_shares: np.ndarray, eps: float = EPSILON) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference shares (scipy.stats.chisquare).

    A category the reference never saw would have an expected count of zero (infinite
    statistic); it gets the floor share instead so that a new category shows as strong drift.
    """
    obs = np.asarray(observed_counts, dtype=float)
    shares = np.clip(np.asarray(reference_shares, dtype=float), eps, None)
    shares = shares / shares.sum()
    expected = shares * obs.sum()
    res = stats.chisquare(obs, expected)
    return float(res.statistic), float(res.pvalue)


# ---------------------------------------------------------------- one window


def window_drift(
    features: dict[str, Any],
    arrays: dict[str, np.ndarray],
    columns: dict[str, list[Any]],
    n: int,
    *,
    psi_warn: float,
    psi_alert: float,
    min_samples: int,
    alpha: float,
) -> tuple[list[FeatureDrift], list[dict[str, Any]]]:
    """Every feature of one window against its reference, with its verdict and data quality.

    The verdicts are set once every feature is tested: the Holm correction over the window's
    features keeps the chance of any false alarm in an in-distribution window at `alpha`,
    whatever the number of features. This is what a snapshot runs (and the benchmark measures).
    """
    opts = {"psi_warn": psi_warn, "psi_alert": psi_alert, "min_samples": min_samples, "alpha": alpha}
    results: list[FeatureDrift] = []
    quality: list[dict[str, Any]] = []
    for name, ref in features.items():
        if ref.get("type") not in ("numeric", "categorical"):
            continue
        values = columns.get(name, [None] * n)
        if ref["type"] == "numeric":
            arr = to_numeric(values)
            result = numeric_drift(name, ref, arrays.get(ref.get("array", "")), arr, **opts)
            q = numeric_quality(ref, arr) if n else None
        else:
            counts = categorical_counts(values, set(ref["shares"]))
            result = categorical_drift(name, ref, None, counts=counts, **opts)
            q = categorical_quality(ref, n, counts) if n else None
        results.append(result)
        if q is not None:
            quality.append({"feature": name, "type": ref["type"], **json_safe(q)})
    statuses_assign(results, alpha=alpha, psi_warn=psi_warn, psi_alert=psi_alert)
    return results, quality


# ---------------------------------------------------------------- data quality


def numeric_quality(reference: dict[str, Any], values: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    n = v.size
    finite = v[np.isfinite(v)]
    missing = 1 - finite.size / n if n else 0.0
    lo, hi = reference.get("min"), reference.get("max")
    out = 0.0
    if finite.size and lo is not None and hi is not None:
        out = float(np.mean((finite < lo) | (finite > hi)))
    return {
        "missing_rate": float(missing),
        "reference_missing_rate": float(reference.get("missing_rate", 0.0)),
        "out_of_range_rate": out,
        "unseen_rate": None,
        "mean": float(finite.mean()) if finite.size else None,
        "reference_mean": reference.get("mean"),
    }


def categorical_quality(reference: dict[str, Any], n_total: int, counts: dict[str, int]) -> dict[str, Any]:
    present = sum(counts.values())
    return {
        "missing_rate": float(1 - present / n_total) if n_total else 0.0,
        "reference_missing_rate": float(reference.get("missing_rate", 0.0)),
        "out_of_range_rate": None,
        "unseen_rate": float(counts.get(UNSEEN, 0) / present) if present else 0.0,
        "mean": None,
        "reference_mean": None,
    }


def to_numeric(values: list[Any]) -> np.ndarray:
    """Logged JSON values to floats; anything unparseable (or missing) becomes NaN."""
    try:
        # Fast path: numbers and None (None becomes NaN) convert in C.
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        pass
    out = np.full(len(values), np.nan)
    for i, x in enumerate(values):
        if x is None or (isinstance(x, str) and x == ""):
            continue
        if isinstance(x, bool):
            out[i] = float(x)
            continue
        try:
            out[i] = float(x)
        except (TypeError, ValueError):
            pass
    return out
