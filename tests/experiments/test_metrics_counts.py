"""`binary_counts_ci`: metrics and bootstrap intervals from a binary confusion matrix's counts."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.ml.metrics import binary_counts_ci, bootstrap_ci


def test_counts_give_the_same_metrics_and_intervals_as_resampling_the_rows():
    tp, fp, fn, tn = 40, 10, 20, 130
    y = np.array([1] * tp + [0] * fp + [1] * fn + [0] * tn)
    pred = np.array([1] * tp + [1] * fp + [0] * fn + [0] * tn)
    rows = bootstrap_ci("classification", y, pred, None, np.array([0, 1]), n_boot=2000, positive=1)
    counts = binary_counts_ci(tp, fp, fn, tn, n_boot=2000)
    assert counts["precision"]["value"] == pytest.approx(0.8)
    assert counts["recall"]["value"] == pytest.approx(40 / 60)
    assert counts["accuracy"]["value"] == pytest.approx(170 / 200)
    for m in ("precision", "recall", "f1", "accuracy"):
        assert counts[m]["value"] == pytest.approx(rows[m]["value"])
        assert counts[m]["ci_low"] == pytest.approx(rows[m]["ci_low"], abs=0.03)
        assert counts[m]["ci_high"] == pytest.approx(rows[m]["ci_high"], abs=0.03)
        assert counts[m]["ci_low"] < counts[m]["value"] < counts[m]["ci_high"]


def test_fewer_rows_give_wider_intervals_and_empty_counts_give_none():
    small = binary_counts_ci(4, 1, 2, 13)
    large = binary_counts_ci(400, 100, 200, 1300)
    width = {k: v["ci_high"] - v["ci_low"] for k, v in small.items()}
    assert all(width[k] > large[k]["ci_high"] - large[k]["ci_low"] for k in width)
    nothing_predicted = binary_counts_ci(0, 0, 10, 90)
    assert nothing_predicted["precision"]["value"] == 0.0 and nothing_predicted["recall"]["value"] == 0.0
    assert binary_counts_ci(0, 0, 0, 0)["f1"] == {"value": None, "ci_low": None, "ci_high": None}
