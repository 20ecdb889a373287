"""The drift statistics against scipy on known data (no database)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from deployments.ml import drift


def test_ks_sorted_matches_scipy_ks_2samp():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    for cur in (rng.normal(size=3000), rng.normal(0.1, 1.0, size=3000), rng.normal(0.5, 2.0, size=800)):
        d, p = drift.ks_sorted(np.sort(ref), cur)
        expected = stats.ks_2samp(ref, cur, method="asymp")
        assert d == pytest.approx(expected.statistic, abs=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_ks_handles_ties_like_scipy():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 5, size=2000).astype(float)
    cur = rng.integers(0, 6, size=1000).astype(float)
    d, _ = drift.ks_sorted(np.sort(ref), cur)
    assert d == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-12)


def test_psi_is_zero_for_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(2)
    ref = drift.numeric_reference(rng.normal(size=20000))
    assert len(ref["json"]["edges"]) == 9
    assert ref["json"]["shares"] == pytest.approx([0.1] * 10, abs=1e-3)
    same = drift.numeric_drift("x", ref["json"], ref["sorted"], rng.normal(size=5000))
    small = drift.numeric_drift("x", ref["json"], ref["sorted"], rng.normal(0.3, 1, size=5000))
    big = drift.numeric_drift("x", ref["json"], ref["sorted"], rng.normal(1.0, 1, size=5000))
    assert same.psi < 0.02 and same.status == "ok"
    assert 0.05 < small.psi < big.psi
    assert big.status == "alert" and big.p_value < 1e-10


def test_psi_formula_by_hand_with_epsilon_for_empty_bins():
    ref = np.array([0.5, 0.5])
    cur = np.array([1.0, 0.0])
    expected = (1.0 - 0.5) * np.log(1.0 / 0.5) + (1e-4 - 0.5) * np.log(1e-4 / 0.5)
    assert drift.psi(ref, cur) == pytest.approx(expected)


def test_chi_square_matches_scipy_and_pools_unseen_categories():
    ref = drift.categorical_reference(np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200, dtype=object))
    cur = ["a"] * 400 + ["b"] * 350 + ["c"] * 200 + ["zzz"] * 30 + [None] * 20
    result = drift.categorical_drift("cat", ref, cur)
    assert result.labels == ["a", "b", "c", drift.UNSEEN]
    assert result.n_current == 980  # missing values are not a category
    shares = np.clip(np.array([0.5, 0.3, 0.2, 0.0]), drift.EPSILON, None)
    shares = shares / shares.sum()
    expected = stats.chisquare([400, 350, 200, 30], shares * 980)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.status == "alert"  # a new category is strong drift


def test_jensen_shannon_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    a, b = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
    assert drift.jensen_shannon(a, b) == pytest.approx(jensenshannon(a, b, base=2))


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=1000), rng.normal(0.5, size=700)
    assert drift.wasserstein_sorted(np.sort(ref), cur) == pytest.approx(stats.wasserstein_distance(ref, cur))


def test_too_few_values_give_insufficient_not_a_verdict():
    rng = np.random.default_rng(4)
    ref = drift.numeric_reference(rng.normal(size=1000))
    result = drift.numeric_drift("x", ref["json"], ref["sorted"], np.array([5.0] * 10))
    assert result.status == "insufficient" and result.psi is None


def test_quality_counts_missing_and_out_of_range():
    ref = drift.numeric_reference(np.arange(100, dtype=float))["json"]
    q = drift.numeric_quality(ref, drift.to_numeric([1, None, 500, "oops", 50]))
    assert q["missing_rate"] == pytest.approx(0.4)
    assert q["out_of_range_rate"] == pytest.approx(1 / 3)


def test_reference_sample_is_bounded():
    ref = drift.numeric_reference(np.random.default_rng(5).normal(size=250_000), max_sample=100_000)
    assert ref["sorted"].size == 100_000 and np.all(np.diff(ref["sorted"]) >= 0)
    assert ref["json"]["n"] == 250_000


def test_one_pass_ks_and_wasserstein_match_scipy():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=4000)
    cur = np.round(rng.normal(0.2, 1.3, size=2500), 2)  # ties within and across samples
    d, p, w = drift.ks_wasserstein(np.sort(ref), cur)
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-6)
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)
