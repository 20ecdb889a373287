"""Messy text categories: the clean_categories recipe step and the automatic recipe's choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets import auto_recipe, categories
from datasets.recipes import RecipeError, auto_plan, compile_recipe, preview
from datasets.transformers import CategoryCleaner


def _regions() -> pd.Series:
    values = ["North"] * 40 + ["north"] * 12 + ["north "] * 5 + ["South"] * 35 + ["SOUTH"] * 4 + ["Soutth"] * 2
    return pd.Series(values + ["East"] * 30 + ["West"] * 25 + [None] * 3, dtype=object)


def test_case_spaces_and_unicode_forms_are_one_category_spelled_as_the_most_frequent():
    cleaning = categories.learn(pd.Series(["Café", "café ", "Cafe\u0301", "  CAFÉ", "Tea", "tea"] * 3))
    assert cleaning.apply("cafe\u0301") == "Café"  # combining accent = the precomposed letter (NFKC)
    assert cleaning.apply("  café   ") == "Café"
    assert cleaning.apply("TEA") == "Tea"


def test_a_rare_near_identical_spelling_is_merged_into_the_frequent_one():
    cleaning = categories.learn(_regions())
    assert cleaning.apply("Soutth") == "South"
    assert cleaning.apply(" SOUTH") == "South"
    assert cleaning.apply("north ") == "North"
    assert cleaning.apply(None) is None
    table = {row["to"]: row for row in categories.mapping_table(cleaning)}
    assert table["South"]["similar"] == ["Soutth"]
    assert set(table["North"]["from"]) == {"north", "north "}


@pytest.mark.parametrize(
    ("common", "rare"),
    [
        ("east", "west"),  # short: one letter apart and both real
        ("A1000", "A1001"),  # codes whose digits differ
        ("Product", "Produce"),  # too frequent to be a typo (see the counts below)
    ],
)
def test_real_categories_are_never_merged(common, rare):
    n_rare = 30 if common == "Product" else 2
    cleaning = categories.learn(pd.Series([common] * 60 + [rare] * n_rare + ["other thing"] * 40))
    assert cleaning.apply(rare) == rare


def test_an_ambiguous_typo_is_left_alone():
    cleaning = categories.learn(pd.Series(["Marten"] * 50 + ["Martin"] * 50 + ["Martan"] * 2))
    assert cleaning.apply("Martan") == "Martan"  # as close to Marten as to Martin


def test_merging_can_be_switched_off():
    cleaning = categories.learn(_regions(), merge_similar=False)
    assert cleaning.apply("Soutth") == "Soutth"
    assert cleaning.apply("SOUTH") == "South"


def test_many_distinct_values_are_not_compared_pairwise():
    cleaning = categories.learn(pd.Series([f"customer {i:05d}" for i in range(categories.MAX_KEYS + 10)]))
    assert "too many" in cleaning.merge_skipped


def test_edit_distance_counts_a_swap_as_one_edit_and_stops_early():
    assert categories.edit_distance("south", "sotuh", 1) == 1
    assert categories.edit_distance("north", "south", 1) == 2  # beyond the limit: limit + 1


def test_the_transformer_learns_on_training_rows_and_applies_at_inference():
    train = pd.DataFrame({"region": _regions(), "x": np.arange(len(_regions()))})
    cleaner = CategoryCleaner(columns=("region",)).fit(train)
    out = cleaner.transform(pd.DataFrame({"region": ["north ", "Soutth", "Atlantis", None], "x": [1, 2, 3, 4]}))
    assert out["region"].tolist()[:3] == ["North", "South", "Atlantis"]
    assert pd.isna(out["region"].iloc[3])
    assert out["x"].tolist() == [1, 2, 3, 4]


def test_the_step_is_saved_with_the_model_and_loads_under_the_allowlist(db):
    from mlplatform.artifacts import model_load, model_save

    frame = pd.DataFrame({"region": _regions().fillna("North"), "income": np.linspace(1, 2, len(_regions()))})
    frame["y"] = np.where(frame["region"].str.strip().str.lower().str.startswith("sou"), "a", "b")
    plan = compile_recipe([{"op": "clean_categories", "columns": ["region"]}], frame=frame, target="y")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = Pipeline([("prep", plan.preprocessor), ("model", LogisticRegression())]).fit(
        frame.drop(columns="y"), frame["y"]
    )
    stored = model_save(model, prefix="tests/categories")
    loaded = model_load(stored.key, stored.sha256)
    request = pd.DataFrame({"region": ["south ", "South"], "income": [1.5, 1.5]})
    assert loaded.predict_proba(request)[0].tolist() == loaded.predict_proba(request)[1].tolist()


def test_compile_refuses_a_numeric_column_and_a_non_boolean_switch():
    frame = pd.DataFrame({"region": ["a", "b"] * 10, "income": np.arange(20.0), "y": [0, 1] * 10})
    with pytest.raises(RecipeError) as numeric:
        compile_recipe([{"op": "clean_categories", "columns": ["income"]}], frame=frame, target="y")
    assert numeric.value.field == "steps[0].columns"
    with pytest.raises(RecipeError) as switch:
        compile_recipe([{"op": "clean_categories", "merge_similar": "yes"}], frame=frame, target="y")
    assert switch.value.field == "steps[0].merge_similar"


def test_preview_shows_the_mapping_learned():
    frame = pd.DataFrame({"region": _regions().fillna("East"), "y": [0, 1] * 78})
    result = preview([{"op": "clean_categories"}], frame=frame, target="y")
    rows = {r["to"]: r for r in result["category_mappings"]["region"]}
    assert "Soutth" in rows["South"]["from"]


def test_the_empty_recipe_cleans_messy_categories_too():
    frame = pd.DataFrame({"region": _regions().fillna("East"), "income": np.arange(156.0)})
    plan = auto_plan(frame.assign(y=[0, 1] * 78), target="y")
    cleaned = plan.preprocessor.fit(frame).named_steps["clean"]
    assert cleaned.mappings_["region"]["soutth"] == "South"
    tidy = pd.DataFrame({"region": ["north", "south"] * 20, "income": np.arange(40.0)})
    assert not hasattr(auto_plan(tidy.assign(y=[0, 1] * 20), target="y").preprocessor, "named_steps")


def test_the_automatic_recipe_fixes_what_the_profile_found():
    from datasets.profiling import profile_frame

    frame = pd.DataFrame(
        {
            "id": np.arange(200),
            "region": _regions().fillna("East").tolist() + ["East"] * 44,
            "income": np.r_[np.random.default_rng(0).normal(50, 5, 199), 9_000],
            "age": [np.nan if i % 9 == 0 else 30 + i % 40 for i in range(200)],
            "y": ["yes", "no"] * 100,
        }
    )
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)
    profile = profile_frame(frame, target="y", task="classification")
    steps = auto_recipe.suggest(columns=profile["columns"], warnings=profile["warnings"], target="y", sample=frame)
    ops = {s.step["op"]: s for s in steps}
    assert ops["drop_columns"].step["columns"] == ["id"] and "identifier" in ops["drop_columns"].why
    assert "drop_duplicates" in ops
    assert ops["clean_categories"].step["columns"] == ["region"]
    assert any(s.step["op"] == "impute" and s.step["columns"] == ["age"] for s in steps)
    assert all(s.why for s in steps)
    # the suggestion compiles against the data it was made for
    compile_recipe([s.step for s in steps], frame=frame, target="y")
