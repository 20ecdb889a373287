"""Calibration of a classifier's probabilities: no Django.

The expected calibration error (ECE) of the top-class confidence with a bootstrap interval, and a
consistency test (Broecker and Smith's consistency resampling): labels drawn from the model's own
probabilities show the ECE a perfectly calibrated model would have on the same rows; the
observed ECE is compared with that null distribution. The final evaluation runs it once on the
locked test set; monitoring's performance estimation (`deployments.ml.estimation`) states the
verdict beside every estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 10
CONSISTENCY_ALPHA = 0.01


def normalized(proba: np.ndarray) -> np.ndarray:
    proba = np.clip(np.asarray(proba, dtype=float), 0.0, None)
    total = proba.sum(axis=1, keepdims=True)
    total[total == 0] = 1.0
    return proba / total


def labels_from(proba: np.ndarray, rng: np.random.Generator, n_sim: int) -> np.ndarray:
    """n_sim x n labels, row i drawn from proba[i] (inverse CDF on one uniform per draw)."""
    cdf = np.cumsum(proba, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random((n_sim, proba.shape[0]))
    out = np.empty(u.shape, dtype=np.int64)
    for s in range(n_sim):
        out[s] = (u[s][:, None] > cdf).sum(axis=1)
    return np.minimum(out, proba.shape[1] - 1)


def ece(proba: np.ndarray, y_idx: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-class confidence (equal-width bins)."""
    proba = normalized(proba)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_idx).astype(float)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total / max(1, len(y_idx)))


def calibration_check(
    proba: np.ndarray, y_idx: np.ndarray, *, n_boot: int = 300, seed: int = 0, source: str = "test set"
) -> dict[str, Any]:
    """ECE with a percentile bootstrap interval (ECE is biased upward on few rows, so the interval
    may sit a little above the point), and a consistency test: the ECE that a perfectly calibrated
    model shows on these rows (labels drawn from its own probabilities) is the null distribution;
    p is the share of those at least as large as the observed one.

    Calibrated when the consistency test does not reject (p >= CONSISTENCY_ALPHA): a small ECE is
    not enough (on the demo's loans an ECE of 0.03 that the test rejects left the estimate's
    interval covering the realized accuracy in about half of the windows; benchmarks/performance_estimation.py).
    """
    proba = normalized(proba)
    y_idx = np.asarray(y_idx, dtype=np.int64)
    n = len(y_idx)
    if n < 30:
        return {"status": "unknown", "n": n, "source": source, "reason": "fewer than 30 labelled rows"}
    rng = np.random.default_rng(seed)
    value = ece(proba, y_idx)
    boots = [ece(proba[idx], y_idx[idx]) for idx in (rng.integers(0, n, n) for _ in range(n_boot))]
    simulated = labels_from(proba, rng, n_boot)
    null = np.array([ece(proba, simulated[s]) for s in range(n_boot)])
    p = float((1 + (null >= value).sum()) / (1 + n_boot))
    low, high = float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))
    ok = p >= CONSISTENCY_ALPHA
    return {
        "status": "calibrated" if ok else "miscalibrated",
        "ece": value,
        "ece_ci_low": low,
        "ece_ci_high": high,
        "p_value": p,
        "n": n,
        "source": source,
        "bins": ECE_BINS,
    }


def isotonic_fit(proba: np.ndarray, y_idx: np.ndarray) -> dict[str, Any]:
    """An isotonic map per class (one-vs-rest; binary: the second column only), small JSON."""
    from sklearn.isotonic import IsotonicRegression

    proba = normalized(proba)
    k = proba.shape[1]
    maps = []
    for c in [1] if k == 2 else range(k):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, c], y_idx == c)
        maps.append({"x": np.round(iso.X_thresholds_, 6).tolist(), "y": np.round(iso.y_thresholds_, 6).tolist()})
    return {"method": "isotonic", "k": k, "maps": maps}


def recalibrated(proba: np.ndarray, calibrator: dict[str, Any]) -> np.ndarray:
    """Probabilities through an `isotonic_fit` map (multiclass: renormalized)."""
    proba = normalized(proba)
    maps = calibrator["maps"]
    if proba.shape[1] == 2:
        p1 = np.interp(proba[:, 1], maps[0]["x"], maps[0]["y"])
        return np.c_[1 - p1, p1]
    out = np.column_stack([np.interp(proba[:, c], m["x"], m["y"]) for c, m in enumerate(maps)])
    empty = out.sum(axis=1) == 0
    out[empty] = 1.0 / out.shape[1]
    return normalized(out)


def calibration_assess(proba: np.ndarray, y_idx: np.ndarray, *, source: str, seed: int = 0) -> dict[str, Any]:
    """The verdict stored with a model version (the final evaluation, on the locked test set).

    The raw probabilities are checked (`calibration_check`). When they fail, an isotonic map is
    fitted on these rows and judged *cross-fitted* (fitted on one half, checked on the other, both
    ways), so the verdict of the recalibrated probabilities is not measured on its own fitting
    rows; the map (fitted on all rows) is kept when it is better, and the estimate uses it.
    """
    proba = normalized(proba)
    y_idx = np.asarray(y_idx, dtype=np.int64)
    raw = calibration_check(proba, y_idx, source=source, seed=seed)
    if raw["status"] != "miscalibrated":
        return raw | {"recalibration": None}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y_idx))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    cross = np.empty_like(proba)
    for fit_rows, apply_rows in (halves, halves[::-1]):
        cross[apply_rows] = recalibrated(proba[apply_rows], isotonic_fit(proba[fit_rows], y_idx[fit_rows]))
    checked = calibration_check(cross, y_idx, source=source, seed=seed)
    raw_summary = {k: raw[k] for k in ("status", "ece", "ece_ci_low", "ece_ci_high", "p_value")}
    if checked["ece"] >= raw["ece"]:
        return raw | {"recalibration": None, "recalibration_tried": {k: checked[k] for k in raw_summary}}
    return checked | {"recalibration": "isotonic", "raw": raw_summary, "calibrator": isotonic_fit(proba, y_idx)}
