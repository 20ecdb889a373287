"""Performance estimated before the labels arrive (confidence-based performance estimation): no Django.

A calibrated classifier's probabilities are the chance of each class. So the labels of a window
of predictions can be *simulated* from them: each row's label drawn from its own probabilities
(binary: a Poisson-binomial; multiclass: a categorical per row). For each simulated set of labels
the metric is computed exactly as the platform computes it (`experiments.ml.metrics`, with the
stored predictions, the positive class, the same definitions); the mean over the simulations is
the estimate and the 2.5% / 97.5% quantiles are an interval for the *realized* value of this
finite window, sampling noise included. This is what NannyML's CBPE estimates (the expected
confusion matrix); the simulation gives every metric the platform has (ROC AUC too) and an
interval without a normal approximation.

The requirement is calibration: with over-confident probabilities the estimate is optimistic.
`calibration_check` measures it on held-out labelled predictions (the locked test set, read once
at the final evaluation): the expected calibration error with a bootstrap interval, and a
consistency test (is the ECE larger than a perfectly calibrated model would show on these rows?).
The verdict is stated beside every estimate; an uncalibrated model's estimate is marked
unreliable and never alerts.

The estimate is about the rows' *own* probabilities: it follows covariate shift (rows moving to
regions where the model is less sure) and prior shift as the model perceives it, but not a change
of concept (the same inputs now having other labels): no method without labels can see that,
which is why the realized value is shown beside the estimate once labels come.

Regression: no sound estimate without labels unless the model carries a calibrated predictive
distribution (none of the platform's models do), so it is not estimated (`REGRESSION_REASON`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from experiments.ml.calibration import labels_from, normalized, recalibrated
from experiments.ml.metrics import fast_classification_metrics

ESTIMATED_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_REASON = "not estimated for regression: no sound method without labels"


def estimate_classification(
    proba: np.ndarray,
    pred_idx: np.ndarray,
    *,
    positive: int = 1,
    n_sim: int = 300,
    seed: int = 0,
    alpha: float = 0.05,
    metrics: tuple[str, ...] = ESTIMATED_METRICS,
) -> dict[str, dict[str, float | None]]:
    """Each metric's estimate and (1 - alpha) interval for the realized value on these rows.

    `proba`: n x k probabilities in the model's class order; `pred_idx`: the served predictions as
    class indices (they carry the decision threshold). A metric that most simulated windows cannot
    compute (ROC AUC when every simulated label is one class) gets value None.
    """
    proba = normalized(proba)
    pred_idx = np.asarray(pred_idx, dtype=np.int64)
    n, k = proba.shape
    if n == 0:
        return {m: {"value": None, "ci_low": None, "ci_high": None} for m in metrics}
    rng = np.random.default_rng(seed)
    labels = labels_from(proba, rng, n_sim)
    draws: dict[str, list[float]] = {m: [] for m in metrics}
    for s in range(n_sim):
        values = fast_classification_metrics(labels[s], pred_idx, proba, k, positive=positive)
        for m in metrics:
            v = values.get(m)
            if v is not None and math.isfinite(v):
                draws[m].append(v)
    out: dict[str, dict[str, float | None]] = {}
    for m in metrics:
        vals = draws[m]
        if len(vals) < n_sim // 2:
            out[m] = {"value": None, "ci_low": None, "ci_high": None}
            continue
        out[m] = {
            "value": float(np.mean(vals)),
            "ci_low": float(np.quantile(vals, alpha / 2)),
            "ci_high": float(np.quantile(vals, 1 - alpha / 2)),
        }
    return out


def confidences_for_estimate(proba: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """The probabilities the estimate uses: through the model's isotonic map when it has one."""
    calibrator = (calibration or {}).get("calibrator")
    return (
        recalibrated(proba, calibrator) if calibrator and calibrator.get("k") == proba.shape[1] else normalized(proba)
    )


def calibration_text(calibration: dict[str, Any] | None) -> str:
    """The sentence shown beside every estimate."""
    head = "Estimates assume calibrated confidences; "
    if not calibration or calibration.get("status") in (None, "unknown"):
        why = (calibration or {}).get("reason") or "no held-out labelled predictions were checked"
        return head + f"this model's calibration is unknown ({why}): the estimate is unreliable and never alerts."
    ece_text = (
        f"ECE {calibration['ece']:.3f} [{calibration['ece_ci_low']:.3f}, {calibration['ece_ci_high']:.3f}] "
        f"on {calibration['n']:,} {calibration.get('source', 'held-out')} rows"
    )
    if calibration["status"] == "calibrated" and calibration.get("recalibration"):
        raw = calibration.get("raw") or {}
        return head + (
            f"this model's raw confidences were not calibrated (ECE {raw.get('ece', 0):.3f}), so they are "
            f"recalibrated ({calibration['recalibration']}, fitted on the {calibration.get('source', 'held-out')}): "
            f"{ece_text}, cross-fitted."
        )
    if calibration["status"] == "calibrated":
        return head + f"this model's calibration: {ece_text}."
    return head + f"this model is not calibrated ({ece_text}): the estimate is unreliable and never alerts."
