"""Decisions by cost for a binary classifier: the expected cost per decision of each decision
threshold and review band, the cheapest one, and bootstrap intervals. No Django here.

Scores (the positive class's probability) are kept as a histogram of `BINS` equal bins with the
(possibly weighted) count of positive and negative rows in each: thresholds and band edges are
multiples of 1/BINS, so the histogram gives every cost exactly, it is small enough to store with
a run's diagnostics, and a bootstrap over rows is a multinomial draw over its cells.

A band [low, high) sends every item whose score lies in it to human review at the review cost;
below it the negative class is decided, from `high` up the positive one; the decision threshold
lies inside the band (where it only decides what a reviewer is shown first). The reviewer is
assumed to decide correctly (`reviewer_accuracy=1`) unless an accuracy is given: then a reviewed
item also costs a false decision's cost with probability 1 - accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from projects.cost_matrix import CostMatrix, CostMatrixError, cost_matrix_parse

__all__ = ["CostMatrix", "CostMatrixError", "cost_analysis", "cost_matrix_parse", "score_hist"]

BINS = 100
BOOTSTRAP = 200


def score_hist(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(2, BINS): weighted counts of negative (row 0) and positive (row 1) rows per score bin."""
    k = bins_of(scores)
    y = np.asarray(positive, dtype=bool)
    w = np.ones(len(k)) if weights is None else np.asarray(weights, dtype=float)
    out = np.zeros((2, BINS))
    out[0] = np.bincount(k[~y], weights=w[~y], minlength=BINS)
    out[1] = np.bincount(k[y], weights=w[y], minlength=BINS)
    return out


def _band_costs(hist: np.ndarray, cm: CostMatrix, reviewer_accuracy: float) -> np.ndarray:
    """(BINS+1, BINS+1) expected cost per decision of the band [a/BINS, b/BINS) for a <= b
    (a == b: no band, threshold a/BINS); +inf where a > b or review is not an option."""
    total = hist.sum()
    if total <= 0:
        return np.full((BINS + 1, BINS + 1), np.inf)
    neg_lt = np.concatenate([[0.0], np.cumsum(hist[0])])  # negatives with score below edge k
    pos_lt = np.concatenate([[0.0], np.cumsum(hist[1])])
    n_tot, p_tot = neg_lt[-1], pos_lt[-1]
    a = np.arange(BINS + 1)[:, None]
    b = np.arange(BINS + 1)[None, :]
    fn, tn = pos_lt[a], neg_lt[a]
    tp, fp = p_tot - pos_lt[b], n_tot - neg_lt[b]
    rev_pos, rev_neg = pos_lt[b] - pos_lt[a], neg_lt[b] - neg_lt[a]
    r = reviewer_accuracy
    cost = fn * cm.false_negative + tn * cm.true_negative + tp * cm.true_positive + fp * cm.false_positive
    if cm.review is not None:
        cost = cost + rev_pos * (cm.review + r * cm.true_positive + (1 - r) * cm.false_negative)
        cost = cost + rev_neg * (cm.review + r * cm.true_negative + (1 - r) * cm.false_positive)
    out = cost / total
    allowed = b >= a if cm.review is not None else b == a
    return np.where(allowed, out, np.inf)


def _argmin(costs: np.ndarray) -> tuple[int, int]:
    # Ties go to the narrower band, then to the threshold nearest 0.5 (the default).
    a = np.arange(BINS + 1)[:, None]
    b = np.arange(BINS + 1)[None, :]
    tie = 1e-12 * ((b - a) * BINS + np.abs(a - BINS // 2))
    i = int(np.argmin(costs + tie))
    return divmod(i, BINS + 1)


def _f1_best(hist: np.ndarray) -> int:
    pos_lt = np.concatenate([[0.0], np.cumsum(hist[1])])
    neg_lt = np.concatenate([[0.0], np.cumsum(hist[0])])
    tp = pos_lt[-1] - pos_lt
    fp = neg_lt[-1] - neg_lt
    fn = pos_lt
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    f1[0] = f1[BINS] = -1.0  # thresholds 0 and 1 decide one class for everything: not a threshold
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return int(best[np.argmin(np.abs(best - BINS // 2))])


def edge(value: float) -> int:
    """A threshold or band edge in [0, 1] as a bin edge index."""
    return int(min(max(round(float(value) * BINS), 0), BINS))


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None, None
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def _resample(hist: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    flat = hist.ravel()
    p = flat / flat.sum()
    return rng.multinomial(n, p).reshape(hist.shape) * (flat.sum() / n)


def _bootstrap(
    replicates: list[np.ndarray],
    cm: CostMatrix,
    reviewer_accuracy: float,
    *,
    chosen: tuple[int, int],
    current: tuple[int, int, int] | None,
) -> dict[str, np.ndarray]:
    """Per replicate: the re-optimised minimum, band edges and threshold; the chosen setting's
    cost; the current setting's cost and the saving over it (paired on the same rows)."""
    a, b = chosen
    out: dict[str, list[float]] = {k: [] for k in ("min", "a", "b", "t", "chosen", "cur", "saving")}
    for rep in replicates:
        c = _band_costs(rep, cm, reviewer_accuracy)
        ra, rb = _argmin(c)
        rt = int(np.argmin(np.diag(c)))
        out["min"].append(c[ra, rb])
        out["a"].append(ra / BINS)
        out["b"].append(rb / BINS)
        out["t"].append(min(max(rt, ra), rb) / BINS)
        out["chosen"].append(c[a, b])
        if current is not None:
            out["cur"].append(c[current[1], current[2]])
            out["saving"].append(c[current[1], current[2]] - c[a, b])
    return {k: np.array(v) for k, v in out.items()}


def _band_curve(costs: np.ndarray) -> list[dict[str, Any]]:
    """For each threshold, the cheapest band around it (a <= t <= b): the second curve."""
    idx = np.arange(BINS + 1)
    curve = []
    for t in range(1, BINS):
        sub = np.where((idx[:, None] <= t) & (idx[None, :] >= t), costs, np.inf)
        i, j = divmod(int(np.argmin(sub)), BINS + 1)
        curve.append({"threshold": t / BINS, "cost": _r(sub[i, j]), "low": i / BINS, "high": j / BINS})
    return curve


def cost_analysis(
    hist: np.ndarray,
    cm: CostMatrix,
    *,
    current: tuple[float, float, float] | None = None,
    reviewer_accuracy: float = 1.0,
    replicates: list[np.ndarray] | None = None,
    n_boot: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """The cost curve, the cheapest threshold and band with 95% bootstrap intervals, and (with
    `current` = (threshold, band low, band high)) the cost now and the saving of the cheapest
    setting over it, paired on the same bootstrap replicates.

    `replicates`: bootstrap histograms made by the caller (weighted live data resamples rows, not
    cells); without them, rows are resampled as a multinomial over the histogram's cells (its
    total must be the row count).
    """
    hist = np.asarray(hist, dtype=float)
    costs = _band_costs(hist, cm, reviewer_accuracy)
    a, b = _argmin(costs)
    no_band = np.diag(costs)
    t_best = int(np.argmin(no_band + 1e-12 * np.abs(np.arange(BINS + 1) - BINS // 2)))
    threshold = min(max(t_best, a), b)  # the band decides; inside it, the cheapest plain threshold
    f1 = _f1_best(hist)
    if replicates is None:
        rng = np.random.default_rng(seed)
        n = round(hist.sum())
        replicates = [_resample(hist, rng, n) for _ in range(n_boot)] if n > 0 else []
    cur = None if current is None else (edge(current[0]), edge(current[1]), edge(current[2]))
    boot = _bootstrap(replicates, cm, reviewer_accuracy, chosen=(a, b), current=cur)
    band_curve = _band_curve(costs) if cm.review is not None else []
    out: dict[str, Any] = {
        "cost_matrix": cm.as_dict(),
        "unit": cm.unit,
        "reviewer_accuracy": reviewer_accuracy,
        "n": round(float(hist.sum()), 2),
        "n_boot": len(replicates),
        "curve": [{"threshold": k / BINS, "cost": _r(no_band[k])} for k in range(1, BINS)],
        "band_curve": band_curve,
        "best": {
            "threshold": threshold / BINS,
            "threshold_ci": _interval(boot["t"]),
            "band": [a / BINS, b / BINS] if b > a else None,
            "band_low_ci": _interval(boot["a"]) if b > a else None,
            "band_high_ci": _interval(boot["b"]) if b > a else None,
            "cost": _r(costs[a, b]),
            # The cost of the chosen setting on resampled rows; the minimum of each replicate
            # re-optimised is optimistic, so the interval of the chosen setting is what is quoted.
            "cost_ci": _interval(boot["chosen"]),
            "min_cost_ci": _interval(boot["min"]),
            "review_share": _r((hist[:, a:b].sum()) / hist.sum()) if hist.sum() else None,
        },
        "no_band": {"threshold": t_best / BINS, "cost": _r(no_band[t_best])},
        "f1_optimal": {"threshold": f1 / BINS, "cost": _r(no_band[f1])},
        "default": {"threshold": 0.5, "cost": _r(no_band[BINS // 2])},
    }
    if cur is not None:
        ci = _interval(boot["saving"])
        out["current"] = {
            "threshold": cur[0] / BINS,
            "band": [cur[1] / BINS, cur[2] / BINS] if cur[2] > cur[1] else None,
            "cost": _r(costs[cur[1], cur[2]]) if cm.review is not None or cur[1] == cur[2] else None,
            "cost_ci": _interval(boot["cur"]),
        }
        saving = costs[cur[1], cur[2]] - costs[a, b]
        out["saving"] = {"value": _r(saving), "ci": ci}
        # Advice only when the whole interval of the saving is above zero (not on noise).
        out["advise"] = bool(ci[0] is not None and ci[0] > 0 and (a, b) != (cur[1], cur[2]))
    return out


def _r(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(float(value)) else None


def current_band(threshold: float, low: float | None, high: float | None) -> tuple[float, float, float]:
    """(threshold, low, high) of a deployment's setting: no band is low = high = threshold."""
    lo = min(low, threshold) if low is not None else threshold
    hi = max(high, threshold) if high is not None else threshold
    return threshold, lo, hi


def hist_from_json(data: Any) -> np.ndarray | None:
    """A stored {"neg": [...], "pos": [...]} histogram, or None when missing or malformed."""
    if not isinstance(data, dict):
        return None
    try:
        neg = np.asarray(data.get("neg"), dtype=float)
        pos = np.asarray(data.get("pos"), dtype=float)
    except (TypeError, ValueError):
        return None
    if neg.shape != (BINS,) or pos.shape != (BINS,) or (neg < 0).any() or (pos < 0).any():
        return None
    return np.vstack([neg, pos])


def hist_to_json(hist: np.ndarray) -> dict[str, list[float]]:
    return {"bins": BINS, "neg": [round(float(v), 4) for v in hist[0]], "pos": [round(float(v), 4) for v in hist[1]]}


def weighted_replicates(
    bins: np.ndarray, positive: np.ndarray, weights: np.ndarray, *, n_boot: int = BOOTSTRAP, seed: int = 0
) -> list[np.ndarray]:
    """Bootstrap histograms of weighted rows (live reviewed items): rows are resampled, each
    keeping its Horvitz-Thompson weight, so the weights' variability enters the interval."""
    rng = np.random.default_rng(seed)
    n = len(bins)
    out = []
    for _ in range(n_boot if n else 0):
        idx = rng.integers(0, n, n)
        h = np.zeros((2, BINS))
        y = positive[idx]
        h[0] = np.bincount(bins[idx][~y], weights=weights[idx][~y], minlength=BINS)
        h[1] = np.bincount(bins[idx][y], weights=weights[idx][y], minlength=BINS)
        out.append(h)
    return out


def bins_of(scores: np.ndarray) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    return np.minimum(np.floor(s * BINS + 1e-9).astype(np.int64), BINS - 1)


def chart(analysis: dict[str, Any], *, width: int = 480, height: int = 220, pad: int = 40) -> dict[str, Any]:
    """SVG coordinates of the cost curves (x: threshold 0..1; y: cost per decision from 0 to the
    curves' 95th percentile, so one extreme threshold does not flatten the rest) and markers."""
    plain = [(p["threshold"], p["cost"]) for p in analysis["curve"] if p["cost"] is not None]
    band = [(p["threshold"], p["cost"]) for p in analysis.get("band_curve") or [] if p["cost"] is not None]
    values = [c for _, c in plain + band]
    if not values:
        return {}
    top = float(np.percentile(values, 95)) or 1.0
    top = top * 1.1

    def x(t: float) -> float:
        return round(pad + t * (width - 2 * pad), 1)

    def y(c: float) -> float:
        return round(height - pad + (pad - height + pad) * min(c, top) / top, 1)

    def line(points: list[tuple[float, float]]) -> str:
        return " ".join(f"{x(t)},{y(c)}" for t, c in points)

    markers = []
    for key, label in (("default", "0.5"), ("f1_optimal", "best F1"), ("current", "now"), ("best", "cost-optimal")):
        m = analysis.get(key)
        if not m or m.get("cost") is None:
            continue
        markers.append({"key": key, "label": label, "x": x(m["threshold"]), "y": y(m["cost"]), "cost": m["cost"]})
    ticks = [{"v": round(top * i / 4, 3), "y": y(top * i / 4)} for i in range(5)]
    xticks = [{"v": i / 10, "x": x(i / 10)} for i in range(0, 11, 2)]
    return {
        "width": width,
        "height": height,
        "pad": pad,
        "plain": line(plain),
        "band": line(band),
        "markers": markers,
        "yticks": ticks,
        "xticks": xticks,
        "x0": pad,
        "x1": width - pad,
        "y0": height - pad,
    }
