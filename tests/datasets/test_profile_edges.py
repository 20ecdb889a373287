"""Generated edge cases of the profile: what must fire, and what must stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from datasets.profiling import profile_frame
from datasets.profiling.common import rank_auc
from datasets.profiling.leaks import FOLDS, make_target, measure_column
from datasets.profiling.target import IMBALANCE_METRICS

N = 2000


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def kinds(profile: dict) -> set[tuple[str, str]]:
    return {(w["kind"], w["column"]) for w in profile["warnings"]}


def leaks_of(profile: dict) -> list[dict]:
    return [w for w in profile["warnings"] if w["kind"].startswith("leakage")]


def test_a_column_that_memorises_pairs_of_rows_is_not_a_leak():
    r = rng(1)
    frame = pd.DataFrame({"household": np.repeat([f"h{i}" for i in range(N // 2)], 2), "y": r.choice(["a", "b"], N)})
    target = make_target(frame["y"], "classification")
    folds = r.integers(0, FOLDS, N)
    measured = measure_column("household", frame["household"], "categorical", target, folds)
    in_sample = frame.groupby("household")["y"].transform(lambda s: (s == "b").mean()).to_numpy()
    assert rank_auc(target.y == 1, in_sample) > 0.8  # what memorising the groups would claim
    assert measured.method == "group_means" and 0.4 < measured.score < 0.6  # out of fold: nothing
    assert not leaks_of(profile_frame(frame, target="y"))


def test_an_id_column_is_reported_as_an_id_not_as_a_leak():
    frame = pd.DataFrame({"ticket": [f"T-{i:06d}" for i in range(N)], "y": rng(2).choice(["a", "b"], N)})
    profile = profile_frame(frame, target="y")
    assert ("id_like", "ticket") in kinds(profile) and not leaks_of(profile)


@pytest.mark.parametrize(("shares", "severity"), [((0.5, 0.5), None), ((0.8, 0.2), "low"), ((0.97, 0.03), "high")])
def test_class_imbalance_by_ratio_recommending_accepted_metrics(shares, severity):
    frame = pd.DataFrame({"x": rng(3).normal(size=N), "y": rng(4).choice(["no", "yes"], N, p=shares)})
    found = [w for w in profile_frame(frame, target="y")["warnings"] if w["kind"] == "class_imbalance"]
    if severity is None:
        assert not found
        return
    assert found[0]["severity"] == severity and found[0]["details"]["metrics"] == list(IMBALANCE_METRICS)
    assert "pr_auc" in found[0]["fix"]


def test_a_single_class_target():
    profile = profile_frame(pd.DataFrame({"x": range(50), "y": ["ok"] * 50}), target="y")
    assert ("single_class", "y") in kinds(profile)


def test_a_field_filled_only_for_one_outcome_is_a_leak_through_missingness():
    r = rng(5)
    y = r.choice(["stay", "churn"], N, p=[0.7, 0.3])
    frame = pd.DataFrame(
        {
            "tenure": r.integers(1, 60, N),
            "cancel_reason": np.where(y == "churn", r.choice(["price", "service", "moved"], N), None),
            "y": y,
        }
    )
    first = profile_frame(frame, target="y")["warnings"][0]
    assert (first["kind"], first["column"], first["severity"]) == ("leakage_single_feature", "cancel_reason", "high")
    assert first["details"]["relation"]["missing"] and first["details"]["relation"]["target_value"] == "stay"
    assert "'cancel_reason' missing goes with 'y' = 'stay'" in first["message"]


def test_a_pure_category_covering_part_of_a_class_is_a_low_relation():
    r = rng(6)
    y = r.choice(["ok", "fraud"], N, p=[0.7, 0.3])
    channel = r.choice(["web", "shop", "phone"], N).astype(object)
    channel[(y == "fraud") & (r.random(N) < 0.4)] = "chargeback_desk"  # only frauds reach that desk
    profile = profile_frame(pd.DataFrame({"channel": channel, "amount": r.gamma(2, 50, N), "y": y}), target="y")
    found = [w for w in profile["warnings"] if w["kind"] == "leakage_relation"]
    assert len(found) == 1 and found[0]["column"] == "channel" and found[0]["severity"] == "low"
    assert "'chargeback_desk'" in found[0]["message"] and "100.0%" in found[0]["message"]


def test_iris_is_not_a_leak_but_a_column_derived_from_its_class_is():
    iris = load_iris(as_frame=True).frame
    assert not leaks_of(profile_frame(iris, target="target", task="classification"))
    iris["recorded_after"] = iris["target"] * 3 + rng(7).normal(0, 0.3, len(iris))
    found = leaks_of(profile_frame(iris, target="target", task="classification"))
    assert [w["column"] for w in found] == ["recorded_after"]
    assert "macro one-vs-rest" in found[0]["message"] and found[0]["details"]["method"] == "neighbours"


def test_regression_leak_and_an_ordinary_predictor():
    frame = load_diabetes(as_frame=True).frame
    assert not leaks_of(profile_frame(frame, target="target", task="regression"))  # bmi: R² 0.34
    frame["billed"] = frame["target"] * 2.5 + rng(8).normal(0, 5, len(frame))
    found = leaks_of(profile_frame(frame, target="target", task="regression"))
    assert [w["column"] for w in found] == ["billed"] and found[0]["details"]["measure"] == "r2"
    assert found[0]["details"]["ci"][0] > 0.9 and "Spearman +1.00" in found[0]["message"]


def test_a_skewed_target_gets_meaning_not_removal():
    r = rng(9)
    price = r.lognormal(12, 1.0, N)
    frame = pd.DataFrame({"rooms": r.integers(1, 8, N), "price": price})
    profile = profile_frame(frame, target="price", task="regression")
    on_target = [w for w in profile["warnings"] if w["column"] == "price"]
    assert [w["kind"] for w in on_target] == ["target_skewed"]
    assert "log(price)" in on_target[0]["fix"] and "mae" in on_target[0]["fix"]
    assert "remove" not in on_target[0]["fix"].replace("not noise to remove", "")


def test_a_code_for_unknown_is_one_sentinel_warning():
    age = rng(10).integers(5, 90, N).astype(float)
    age[:6] = 999
    profile = profile_frame(pd.DataFrame({"age": age, "y": rng(11).normal(size=N)}), target="y")
    assert [k for k, c in kinds(profile) if c == "age"] == ["sentinel_values"]
    w = next(w for w in profile["warnings"] if w["column"] == "age")
    assert w["details"] == {"value": 999, "rows": 6} and "<= 89" in w["message"]


def test_one_typo_is_extreme_but_a_heavy_tail_is_not():
    r = rng(12)
    income = r.lognormal(10, 0.6, N)
    income[5] = 4.2e9
    frame = pd.DataFrame({"income": income, "sales": r.lognormal(3, 1.8, N), "y": r.choice(["a", "b"], N)})
    profile = profile_frame(frame, target="y")
    assert ("extreme_values", "income") in kinds(profile)
    w = next(w for w in profile["warnings"] if w["kind"] == "extreme_values")
    assert w["severity"] == "medium" and w["details"]["rows"] == 1 and w["details"]["variance_share"] > 0.99
    assert "linear" in w["fix"] and "tree" in w["fix"]
    assert not any(c == "sales" for _, c in kinds(profile))
    sales = next(c for c in profile["columns"] if c["name"] == "sales")
    assert sales["skew"] > 2 and sales["outliers"]["count"] > 0  # facts, not warnings


def test_impossible_values_follow_the_documented_rules():
    r = rng(13)
    teenagers = r.integers(12, 18, 200).astype(float)
    frame = pd.DataFrame(
        {
            "age": teenagers,
            "page_views": -r.integers(1, 5, 200),  # no rule: "page" is not an age
            "num_children": np.r_[-1, r.integers(0, 4, 199)],
            "success_pct": np.r_[130.0, r.uniform(0, 100, 199)],
            "price_pct_change": r.normal(0, 150, 200),
        }
    )
    plain = profile_frame(frame)
    assert {c for k, c in kinds(plain) if k == "impossible_values"} == {"num_children", "success_pct"}
    credit = profile_frame(frame, objective="Approve credit card applications")
    w = next(w for w in credit["warnings"] if w["column"] == "age")
    assert w["kind"] == "impossible_values" and w["details"]["rule"] == "adult_age" and w["details"]["rows"] == 200
    assert w["severity"] == "high" and "the project's objective" in w["message"]
    old = frame.assign(age=np.r_[150.0, teenagers[1:]])
    assert next(w for w in profile_frame(old)["warnings"] if w["column"] == "age")["details"]["rule"] == "age"


def test_a_spike_at_a_natural_ceiling_is_a_fact_not_a_cap():
    r = rng(14)
    pct = np.minimum(r.normal(90, 8, N).round(1), 100.0)
    limit = np.minimum(r.lognormal(9, 0.5, N).round(), 20_000.0)
    profile = profile_frame(pd.DataFrame({"score_percent": pct, "loan_amount": limit}))
    assert ("capped", "loan_amount") in kinds(profile) and ("capped", "score_percent") not in kinds(profile)
    column = next(c for c in profile["columns"] if c["name"] == "score_percent")
    assert any("natural ceiling" in f for f in column["facts"])


def test_leak_measures_on_big_data_use_a_sample_and_say_so():
    r = rng(15)
    n = 60_000
    y = np.where(r.random(n) < 0.3, "yes", "no")
    frame = pd.DataFrame(
        {"x": r.normal(size=n), "settled_amount": np.where(y == "yes", r.uniform(1, 2, n), 0.0), "y": y}
    )
    first = profile_frame(frame, target="y")["warnings"][0]
    assert first["column"] == "settled_amount" and first["details"]["rows"] == 20_000
    assert "on a sample of 20,000 of 60,000 rows" in first["message"]


def test_warnings_rank_leaks_first_then_target_then_data():
    r = rng(16)
    y = r.choice(["no", "yes"], N, p=[0.96, 0.04])
    frame = pd.DataFrame(
        {
            "a_missing": np.where(r.random(N) < 0.4, np.nan, r.normal(size=N)),
            "z_leak": np.where(y == "yes", 1.0, 0.0) + r.normal(0, 0.01, N),
            "y": y,
        }
    )
    order = [w["kind"] for w in profile_frame(frame, target="y")["warnings"]]
    assert order.index("leakage_single_feature") < order.index("class_imbalance") < order.index("missing_values")


def test_one_row_classes_do_not_switch_the_leak_check_off():
    r = rng(17)
    y = r.choice(["a", "b"], 500).astype(object)
    y[:2] = ["typo_a", "typo_b"]  # classes of one row cannot be measured out of fold
    frame = pd.DataFrame({"outcome_code": np.where(y == "a", 1.0, 0.0) + r.normal(0, 0.01, 500), "y": y})
    profile = profile_frame(frame, target="y")
    assert ("leakage_single_feature", "outcome_code") in kinds(profile)
    import json

    json.dumps(profile, allow_nan=False)  # details are plain JSON numbers
