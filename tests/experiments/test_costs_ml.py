"""Decisions by cost, the Django-free maths: the cost matrix's validation, exact costs of every
threshold and review band against a brute-force count, intervals, advice only when clear."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.ml import costs
from projects.cost_matrix import CostMatrix, CostMatrixError, cost_matrix_parse

CM = CostMatrix(false_positive=5.0, false_negative=20.0, review=1.0, unit="EUR")


def data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = np.clip(rng.normal(np.where(y, 0.65, 0.35), 0.18), 0, 0.999)
    return s, y


def brute(s, y, cm, low, high):
    """Cost per decision counted row by row: review in [low, high) (the reviewer then decides
    correctly), positive from high up."""
    total = 0.0
    for score, pos in zip(s, y, strict=True):
        if low <= score < high:
            total += cm.review + (cm.true_positive if pos else cm.true_negative)
        elif score >= high:
            total += cm.true_positive if pos else cm.false_positive
        else:
            total += cm.false_negative if pos else cm.true_negative
    return total / len(s)


def test_cost_matrix_validation_names_the_key():
    assert cost_matrix_parse(None) is None and cost_matrix_parse({}) is None
    ok = cost_matrix_parse({"unit": "EUR", "false_positive": 5, "false_negative": "20"})
    assert ok == CostMatrix(false_positive=5.0, false_negative=20.0, unit="EUR")
    bad = [
        ({"unit": "EUR", "false_positive": -1, "false_negative": 2}, "cost_matrix.false_positive"),
        ({"unit": "EUR", "false_positive": 1, "false_negative": "x"}, "cost_matrix.false_negative"),
        ({"unit": "EUR", "false_positive": 1, "false_negative": 2, "review": float("nan")}, "cost_matrix.review"),
        ({"unit": "EUR", "false_positive": 1, "false_negative": 2, "review": True}, "cost_matrix.review"),
        ({"unit": "", "false_positive": 1, "false_negative": 2}, "cost_matrix.unit"),
        ({"unit": "EUR", "false_negative": 2}, "cost_matrix.false_positive"),
        ({"unit": "EUR", "false_positive": 1, "false_negative": 2, "bonus": 1}, "cost_matrix.bonus"),
        ({"unit": "EUR", "false_positive": 0, "false_negative": 0}, "cost_matrix.false_positive"),
        ([1, 2], "cost_matrix"),
    ]
    for raw, field in bad:
        with pytest.raises(CostMatrixError) as exc:
            cost_matrix_parse(raw)
        assert exc.value.field == field, raw


def test_costs_match_a_row_by_row_count():
    s, y = data(400)
    cm = CostMatrix(false_positive=3, false_negative=11, review=2, true_positive=0.5, unit="min")
    out = costs.cost_analysis(costs.score_hist(s, y), cm, current=(0.4, 0.3, 0.55), n_boot=20)
    for p in out["curve"][::7]:
        t = p["threshold"]
        assert p["cost"] == pytest.approx(brute(s, y, cm, t, t), abs=1e-3)
    assert out["current"]["cost"] == pytest.approx(brute(s, y, cm, 0.3, 0.55), abs=1e-3)
    low, high = out["best"]["band"] or (out["best"]["threshold"],) * 2
    assert out["best"]["cost"] == pytest.approx(brute(s, y, cm, low, high), abs=1e-3)
    # The optimum really is the minimum over a grid of bands.
    grid = [(a / 20, b / 20) for a in range(21) for b in range(a, 21)]
    assert out["best"]["cost"] <= min(brute(s, y, cm, a, b) for a, b in grid) + 1e-9


def test_the_optimum_beats_default_and_f1_and_has_intervals():
    s, y = data()
    out = costs.cost_analysis(costs.score_hist(s, y), CM, current=(0.5, 0.5, 0.5))
    best = out["best"]
    assert best["band"] is not None and best["band"][0] <= best["threshold"] <= best["band"][1]
    assert best["cost"] < out["no_band"]["cost"] <= out["default"]["cost"]
    assert out["no_band"]["cost"] <= out["f1_optimal"]["cost"]
    assert best["cost_ci"][0] <= best["cost"] <= best["cost_ci"][1]
    assert best["threshold_ci"][0] <= best["threshold_ci"][1]
    assert out["saving"]["ci"][0] > 0 and out["advise"] is True
    assert len(out["curve"]) == 99 and len(out["band_curve"]) == 99
    assert all(b["cost"] <= p["cost"] + 1e-9 for b, p in zip(out["band_curve"], out["curve"], strict=True))
    chart = costs.chart(out)
    assert chart["plain"] and chart["band"] and {m["key"] for m in chart["markers"]} >= {"best", "current"}


def test_no_review_cost_means_no_band():
    s, y = data()
    cm = CostMatrix(false_positive=5, false_negative=20, unit="EUR")
    out = costs.cost_analysis(costs.score_hist(s, y), cm, n_boot=20)
    assert out["best"]["band"] is None and out["band_curve"] == []
    assert out["best"]["cost"] == out["no_band"]["cost"]


def test_no_advice_on_noise():
    """Twenty rows and a current setting next to the optimum: the saving's interval holds zero."""
    s, y = data(20, seed=3)
    cm = CostMatrix(false_positive=5, false_negative=6, unit="EUR")
    first = costs.cost_analysis(costs.score_hist(s, y), cm, n_boot=50)
    t = first["best"]["threshold"] + 0.01
    out = costs.cost_analysis(costs.score_hist(s, y), cm, current=(t, t, t), n_boot=200)
    assert out["saving"]["ci"][0] <= 0 and out["advise"] is False


def test_weighted_replicates_keep_the_weighted_total():
    s, y = data(300)
    w = np.where(s > 0.6, 4.0, 1.0)
    reps = costs.weighted_replicates(costs.bins_of(s), y, w, n_boot=30)
    hist = costs.score_hist(s, y, w)
    assert hist.sum() == pytest.approx(w.sum())
    assert np.mean([r.sum() for r in reps]) == pytest.approx(w.sum(), rel=0.1)
    out = costs.cost_analysis(hist, CM, current=(0.5, 0.5, 0.5), replicates=reps)
    assert out["n_boot"] == 30 and out["best"]["cost_ci"][0] is not None


def test_histogram_round_trip_and_malformed():
    s, y = data(100)
    h = costs.score_hist(s, y)
    assert np.allclose(costs.hist_from_json(costs.hist_to_json(h)), h)
    assert costs.hist_from_json({"neg": [1] * 5, "pos": [1] * 5}) is None
    assert costs.hist_from_json({"neg": [-1] * 100, "pos": [1] * 100}) is None
    assert costs.hist_from_json(None) is None


def test_diagnostics_store_the_validation_scores_as_a_histogram():
    import pandas as pd

    from experiments.ml.diagnostics import _classification_charts

    s, y = data(200)
    labels = np.array(["no", "yes"])
    proba = np.column_stack([1 - s, s])
    truth = pd.Series(np.where(y, "yes", "no"))
    out = _classification_charts(truth, np.where(s >= 0.5, "yes", "no"), proba, labels, "yes")
    hist = costs.hist_from_json(out["score_hist"])
    assert hist is not None and hist.sum() == 200 and hist[1].sum() == y.sum()
    assert out["positive_class"] == "yes"
