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
ECE_OK = 0.05  # an ECE whose whole interval is below this is calibrated enough to estimate from
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

    Calibrated when the consistency test does not reject (p >= CONSISTENCY_ALPHA) or the whole ECE
    interval is below ECE_OK (a large test set rejects differences too small to matter).
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
    ok = p >= CONSISTENCY_ALPHA or high < ECE_OK
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
