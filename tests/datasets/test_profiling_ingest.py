"""Profiling and parsing, pure pandas (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from datasets.ingest import IngestError, read_table
from datasets.profiling import profile_frame


def kinds(profile):
    return {(w["kind"], w["column"]) for w in profile["warnings"]}


def test_breast_cancer_profile_has_correlations_and_no_false_leakage():
    f = load_breast_cancer(as_frame=True).frame
    p = profile_frame(f, target="target", task="classification")
    assert p["rows"] == 569 and len(p["columns"]) == 31
    assert p["table"]["correlations"]["numeric"]["columns"][0] == "mean radius"
    assert not any(k == "leakage_single_feature" for k, _ in kinds(p))
    assert p["target"]["classes"][0]["count"] == 357


def test_a_feature_that_alone_predicts_the_target_is_a_leakage_suspect():
    f = load_diabetes(as_frame=True).frame
    f["label"] = np.where(f["target"] > f["target"].median(), "high", "low")
    f["recorded_after"] = f["target"] * 2 + 1
    f = f.drop(columns="target")
    p = profile_frame(f, target="label", task="classification")
    assert ("leakage_single_feature", "recorded_after") in kinds(p)
    assert ("leakage_single_feature", "bmi") not in kinds(p)


def test_capped_values_and_imbalance_and_constant():
    rng = np.random.default_rng(1)
    n = 2000
    income = np.minimum(rng.lognormal(1.2, 0.6, n), 15.0)
    y = np.where(rng.random(n) < 0.04, "fraud", "ok")
    p = profile_frame(pd.DataFrame({"income": income, "const": 1, "y": y}), target="y")
    k = kinds(p)
    assert ("capped", "income") in k
    assert ("class_imbalance", "y") in k
    assert ("constant", "const") in k
    col = next(c for c in p["columns"] if c["name"] == "income")
    assert col["max"] == 15.0 and col["at_max"] > 10
    assert sum(col["histogram"]["counts"]) == n


def test_profile_is_json_safe_with_inf_and_all_missing():
    import json

    f = pd.DataFrame({"a": [1.0, np.inf, -np.inf, np.nan] * 20, "b": [None] * 80, "c": ["x"] * 80})
    p = profile_frame(f)
    json.dumps(p, allow_nan=False)
    assert ("empty_column", "b") in kinds(p)


@pytest.mark.parametrize(("sep", "encoding"), [(",", "utf-8"), (";", "cp1252"), ("\t", "utf-16"), ("|", "utf-8-sig")])
def test_csv_delimiters_and_encodings_are_detected(sep, encoding):
    f = pd.DataFrame({"ville": ["Orléans", "Nîmes", "Besançon"] * 10, "n": range(30)})
    out, meta = read_table(f.to_csv(index=False, sep=sep).encode(encoding))
    assert meta["delimiter"] == sep
    assert out["ville"].tolist() == f["ville"].tolist()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"a,b\n", "no rows"),
        (b"a,b\n1,2,3\n", "Ragged"),
        (b"\x00\x00\x01\x02" * 64, "binary"),
        (b"PK\x03\x04rest", "zip"),
        (b"1.5,2\n3,4\n", "header"),
    ],
)
def test_unreadable_bytes_name_the_problem(data, message):
    with pytest.raises(IngestError, match=f"(?i){message}"):
        read_table(data)
