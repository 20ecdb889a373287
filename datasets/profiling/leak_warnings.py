"""What the profile says about leaks: the measures of `leaks.py` judged, ranked and explained.

Severity (the lines are argued in `leaks.py`):
- high `leakage_identical`: the target under another name (a one-to-one recoding);
- high `leakage_single_feature`: ROC AUC >= 0.985 alone (the lower end of its 95% interval
  >= 0.975), or >= 0.95 with an exact relation; R² >= 0.90 for a numeric target (interval's
  lower end >= 0.85);
- medium `leakage_relation`: an exact relation ("'x' is 0 for every 'no'") with a weaker AUC;
- low `leakage_relation`: a pure value covering part of a class (a category, or missingness).

Measured on a seeded sample of at most 20,000 rows with a target (the message says so).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from datasets.kinds import CATEGORICAL, ID_LIKE, TEXT

from . import leaks
from .common import sample_rows
from .warnings import warning

HOW = {
    "group_means": "its groups' target shares, out of fold",
    "neighbours": "its nearest values' targets, out of fold",
    "raw_values": "its raw values",
    "linear": "a straight line",
}


def leak_warnings(sample: pd.DataFrame, columns: list[dict], target: str, task: str, *, total_rows: int) -> list[dict]:
    labelled = sample.dropna(subset=[target])
    if task == "classification":
        # Classes of one or two rows cannot be measured out of fold: leave them out, not the check.
        sizes = labelled[target].astype(str).map(labelled[target].astype(str).value_counts())
        labelled = labelled[sizes.to_numpy() >= 3]
    data = sample_rows(labelled, leaks.LEAK_ROWS, seed=2)
    if len(data) < 30:
        return []
    goal = leaks.make_target(data[target], task)
    if goal is None:
        return []
    pure_goal = goal if task == "classification" else leaks.spike_target(data[target])
    folds = np.random.default_rng(3).integers(0, leaks.FOLDS, len(data))
    # "out of fold on 1,319 rows", or "on a sample of 20,000 of 1,000,000 rows"
    scope = (
        f"on {len(data):,} rows" if len(data) >= total_rows else f"on a sample of {len(data):,} of {total_rows:,} rows"
    )
    out: list[dict] = []
    for col in columns:
        name, kind = col["name"], col["kind"]
        if name == target or kind == TEXT:
            continue
        values = data[name]
        if task == "classification" and _one_to_one(values, data[target]):
            out.append(_identical(name, target))
            continue
        if kind == ID_LIKE or col["missing"] == len(sample):
            continue  # ids are reported on their own; empty columns too
        found = leaks.measure_column(name, values, kind, goal, folds, col.get("date_format", ""))
        relation = leaks.relation(name, values, kind, pure_goal) if pure_goal is not None else None
        w = _judge(found, relation, target, task, scope, goal, kind)
        if w is not None:
            out.append(w)
    return out


def _one_to_one(feature: pd.Series, target: pd.Series) -> bool:
    f, f_uniques = pd.factorize(feature, use_na_sentinel=False)
    t, t_uniques = pd.factorize(target)
    if len(f_uniques) != len(t_uniques):
        return False
    pairs = len(np.unique(f.astype(np.int64) * (len(t_uniques) + 1) + t))
    return pairs == len(t_uniques)


def _identical(name: str, target: str) -> dict:
    return warning(
        "leakage_identical",
        name,
        "high",
        f"{name!r} is the target {target!r} under another name: a model would learn nothing usable.",
        f"Drop {name!r} in the recipe (drop_columns).",
        score=2.0,
    )


def _judge(
    found: leaks.Measure,
    relation: leaks.Relation | None,
    target: str,
    task: str,
    scope: str,
    goal: leaks.Target,
    kind: str,
) -> dict | None:
    exact = relation is not None and relation.exact
    if task == "classification":
        alone = found.score >= leaks.AUC_LEAK and found.ci[0] >= leaks.AUC_LEAK_LOWER
        leak = alone or (exact and found.score >= leaks.AUC_WITH_RELATION)
    else:
        if found.score >= leaks.R2_LEAK and found.predictions is not None:
            found.ci = leaks.r2_interval(goal.y, found.predictions)
        leak = found.score >= leaks.R2_LEAK and found.ci[0] >= leaks.R2_LEAK_LOWER
    other = goal.classes[0] if task == "classification" and goal.k == 2 else ""
    if relation is not None and other == relation.target_value:
        other = goal.classes[1]
    said = relation.sentence(target, other) if relation is not None else ""
    if leak:
        return _leak(found, said, target, task, scope, goal, kind, exact, relation)
    if relation is None:
        return None
    name = found.column
    return warning(
        "leakage_relation",
        name,
        "medium" if exact else "low",
        f"Near-deterministic relation ({scope}): {said}. Not a leak by itself: check that {name!r} is "
        f"recorded before {target!r} is known.",
        f"Find out how {name!r} is collected; if it is filled in after the outcome (or only for one outcome), "
        "drop it (drop_columns).",
        score=relation.purity * relation.class_recall,
        details={"relation": _relation_details(relation)},
    )


def _leak(
    found: leaks.Measure,
    said: str,
    target: str,
    task: str,
    scope: str,
    goal: leaks.Target,
    kind: str,
    exact: bool,
    relation: leaks.Relation | None,
) -> dict:
    name = found.column
    if task == "classification":
        lo, hi = found.ci
        how = HOW[found.method]
        several = " (macro one-vs-rest)" if goal.k > 2 else ""
        figure = f"ROC AUC {found.score:.3f}{several} (95% CI {lo:.3f} to {hi:.3f}; from {how}, {scope})"
    else:
        lo, hi = found.ci
        how = HOW[found.method]
        rank = f", Spearman {found.spearman:+.2f}" if found.spearman is not None else ""
        figure = f"R² {found.score:.3f} (95% CI {lo:.3f} to {hi:.3f}; from {how}{rank}, {scope})"
    why = f" {said[0].upper()}{said[1:]}." if said else ""
    derived = " (or assigned together with it, as a grade with a price)" if kind == CATEGORICAL else ""
    details: dict[str, Any] = {
        "measure": found.measure,
        "value": found.score,
        "ci": [lo, hi],
        "rows": found.rows,
        "method": found.method,
    }
    if relation is not None:
        details["relation"] = _relation_details(relation)
    return warning(
        "leakage_single_feature",
        name,
        "high",
        f"{name!r} alone predicts {target!r}: {figure}.{why} A column this decisive is usually recorded after the "
        f"outcome or derived from the target{derived}: a leak.",
        f"Find out when {name!r} is known. If only after the outcome (or computed from it), drop it "
        "(drop_columns) before training; if it truly is available at prediction time, keep it and write why in the "
        "project's assumptions.",
        # An exact relation is evidence on top of the AUC: it ranks such a column first.
        score=found.score + (0.01 if exact else 0.0),
        details=details,
    )


def _relation_details(relation: leaks.Relation) -> dict[str, Any]:
    return {
        "value": None if relation.missing else relation.value,
        "missing": relation.missing,
        "negated": relation.negated,
        "target_value": relation.target_value,
        "rows": relation.rows,
        "purity": relation.purity,
        "class_recall": relation.class_recall,
        "exact": relation.exact,
    }
