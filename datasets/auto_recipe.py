"""The automatic recipe: explicit steps built from a version's profile, each with its reason.

An empty recipe compiles to a built-in default (`recipes.auto_plan`); this module writes the
same decisions, plus the fixes the profile's warnings ask for, as steps a person can read and
edit before training. Every step says why it is there ("'income' has 6% missing values").

Decisions, in pipeline order:
- drop columns that cannot help or would cheat: identifiers, empty or constant columns, and
  leakage suspects (a column that is the target under another name, or predicts it alone);
- drop exact duplicate rows (training rows only) when the profile found any;
- clean messy text categories ("South", "south ") when the values show several spellings of
  one category (found on a sample of training rows; the mapping itself is learned when the
  recipe is fitted, on the training rows);
- impute missing values (median for numbers, the most frequent value for categories);
- date parts for dates; one-hot categories (ordinal for many categories); scale numbers
  (robust scaling where outliers or strong skew would dominate a standard scaler).

Plain Python over the profile dict and a pandas sample: no Django.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, ID_LIKE, NUMERIC, TEXT
from datasets.recipes import messy_category_columns

HIGH_CARDINALITY = 50  # one-hot beyond this many categories makes wide, sparse matrices
DROP_WARNINGS = {
    "empty_column": "is empty",
    "constant": "has a single value",
    "leakage_identical": "is the target under another name (leakage)",
    "leakage_single_feature": "alone predicts the target: probably known only after the outcome (leakage)",
}


@dataclass(frozen=True)
class Suggestion:
    step: dict[str, Any]
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "why": self.why}


def _names(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:4])
    return shown + (f" and {len(columns) - 4} more" if len(columns) > 4 else "")


def _verb(columns: list[str], one: str, many: str) -> str:
    return one if len(columns) == 1 else many


def _drops(columns: list[dict], warnings: list[dict], target: str) -> tuple[list[str], list[str]]:
    reasons: dict[str, str] = {}
    for c in columns:
        if c["name"] != target and c.get("kind") == ID_LIKE:
            reasons.setdefault(c["name"], "looks like an identifier (unique per row)")
    for w in warnings:
        column = w.get("column") or ""
        kind = str(w.get("kind", ""))
        reason = DROP_WARNINGS.get(kind) or ("is a leakage suspect" if kind.startswith("leakage") else "")
        if column and column != target and reason:
            reasons.setdefault(column, reason)
    names = [c["name"] for c in columns if c["name"] in reasons]
    return names, [f"{n!r} {reasons[n]}" for n in names]


def suggest(
    *, columns: list[dict], warnings: list[dict], target: str, sample: pd.DataFrame | None = None
) -> list[Suggestion]:
    """The automatic recipe for a profiled version and a target column."""
    out: list[Suggestion] = []
    dropped, why_dropped = _drops(columns, warnings, target)
    if dropped:
        out.append(Suggestion({"op": "drop_columns", "columns": dropped}, "; ".join(why_dropped) + "."))
    if any(w.get("kind") == "duplicate_rows" for w in warnings):
        message = next(w.get("message", "") for w in warnings if w.get("kind") == "duplicate_rows")
        out.append(Suggestion({"op": "drop_duplicates"}, f"{message} Removed from training rows only."))
    features = [c for c in columns if c["name"] != target and c["name"] not in dropped]
    kinds = {c["name"]: c.get("kind") for c in features}
    categorical = [n for n, k in kinds.items() if k == CATEGORICAL]
    if sample is not None and categorical:
        messy = messy_category_columns(sample, categorical)
        if messy:
            out.append(
                Suggestion(
                    {"op": "clean_categories", "columns": messy, "merge_similar": True},
                    f"{_names(messy)} {_verb(messy, 'spells', 'spell')} some categories several ways (case, spaces or typos): "
                    "one spelling per category, learned on training rows.",
                )
            )
    missing = {c["name"]: c.get("missing_share") or 0 for c in features if c.get("missing")}
    numeric_missing = [n for n in missing if kinds[n] in (NUMERIC, BOOLEAN)]
    if numeric_missing:
        shares = ", ".join(f"{n!r} {missing[n]:.0%}" for n in numeric_missing[:4])
        out.append(
            Suggestion(
                {"op": "impute", "columns": numeric_missing, "strategy": "median"},
                f"Missing numbers ({shares}): the median is robust to outliers.",
            )
        )
    categorical_missing = [n for n in missing if kinds[n] == CATEGORICAL]
    if categorical_missing:
        out.append(
            Suggestion(
                {"op": "impute", "columns": categorical_missing, "strategy": "most_frequent"},
                f"Missing categories in {_names(categorical_missing)}: the most frequent value.",
            )
        )
    dates = [n for n, k in kinds.items() if k == DATETIME]
    if dates:
        out.append(
            Suggestion(
                {"op": "date_parts", "columns": dates, "parts": ["year", "month", "dayofweek"]},
                f"Models read numbers, not dates: year, month and day of week of {_names(dates)}.",
            )
        )
    out.extend(_encodings(features, categorical))
    out.extend(_scaling(features, warnings))
    text = [n for n, k in kinds.items() if k == TEXT]
    if text:
        out.append(
            Suggestion(
                {"op": "drop_columns", "columns": text},
                f"{_names(text)} {_verb(text, 'is', 'are')} free text: dropped (replace this step by tfidf to use the words).",
            )
        )
    return out


def _encodings(features: list[dict], categorical: list[str]) -> list[Suggestion]:
    unique = {c["name"]: c.get("unique") or 0 for c in features}
    many = [n for n in categorical if unique[n] > HIGH_CARDINALITY]
    few = [n for n in categorical if n not in many]
    out = []
    if few:
        out.append(
            Suggestion(
                {"op": "encode", "columns": few, "method": "onehot"},
                f"One column per category of {_names(few)} (categories under 5 rows grouped).",
            )
        )
    if many:
        out.append(
            Suggestion(
                {"op": "encode", "columns": many, "method": "ordinal"},
                f"{_names(many)} {_verb(many, 'has', 'have')} more than {HIGH_CARDINALITY} categories: one number per category.",
            )
        )
    return out


def _scaling(features: list[dict], warnings: list[dict]) -> list[Suggestion]:
    numeric = [c["name"] for c in features if c.get("kind") == NUMERIC]
    if not numeric:
        return []
    # Skew and outliers are column facts (the profile warns only about extreme entries and codes
    # for unknown): robust scaling where the facts say a mean and a standard deviation mislead.
    heavy = {w.get("column") for w in warnings if w.get("kind") in ("extreme_values", "sentinel_values")}
    for c in features:
        skew = c.get("skew")
        outlier_share = (c.get("outliers") or {}).get("share") or 0
        if (skew is not None and abs(skew) > 2) or outlier_share > 0.05:
            heavy.add(c["name"])
    robust = [n for n in numeric if n in heavy]
    standard = [n for n in numeric if n not in heavy]
    out = []
    if standard:
        out.append(
            Suggestion(
                {"op": "scale", "columns": standard, "method": "standard"},
                "Numbers on one scale (mean 0, standard deviation 1), for linear and distance-based models.",
            )
        )
    if robust:
        out.append(
            Suggestion(
                {"op": "scale", "columns": robust, "method": "robust"},
                f"{_names(robust)} {_verb(robust, 'has', 'have')} outliers or a strong skew: scaled by median and quartiles.",
            )
        )
    return out
