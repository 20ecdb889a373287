"""Problems of the target: one class, imbalance, missing labels, a capped or skewed numeric target.

A target's outliers are never "removed": the large values of a price or a claim are the cases
the model must get right. What they mean for the model is said instead (a log transform, a
robust metric); a capped target is reported as censored, since the values beyond the cap are
unknown and errors on those rows are understated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from datasets.kinds import BOOLEAN, CATEGORICAL

from .common import fmt_number, json_float, skewness
from .values import end_spike
from .warnings import warning

IMBALANCE_RATIOS = ((20, "high"), (10, "medium"), (3, "low"))
# Metrics the imbalance warning recommends: every one is an accepted success / experiment
# metric (projects.metrics.METRICS; a test holds the two lists together).
IMBALANCE_METRICS = ("pr_auc", "f1", "balanced_accuracy")
SKEWED_TARGET_METRICS = ("mae",)
TARGET_SKEW = 2.0


def infer_task(tcol: dict) -> str:
    return "classification" if tcol["kind"] in (CATEGORICAL, BOOLEAN) or tcol["unique"] <= 20 else "regression"


def target_checks(y: pd.Series, tcol: dict, task: str, info: dict) -> tuple[dict[str, Any], list[dict]]:
    """(the profile's `target` block, warnings about the target)."""
    target = tcol["name"]
    out: dict[str, Any] = {"column": target, "task": task, "missing": int(y.isna().sum())}
    warnings: list[dict] = []
    if task == "classification":
        warnings += _classes(y, target, out)
    else:
        out["histogram"] = tcol.get("histogram")
        if info.get("finite") is not None and len(info["finite"]):
            warnings += _numeric_target(tcol, info)
    if out["missing"]:
        warnings.append(
            warning(
                "target_missing",
                target,
                "medium",
                f"{out['missing']} rows have no target value.",
                "Rows without a target are ignored in training; label them or drop them.",
                score=out["missing"] / max(1, len(y)),
            )
        )
    return out, warnings


def _classes(y: pd.Series, target: str, out: dict) -> list[dict]:
    counts = y.astype(str).where(y.notna(), None).value_counts()
    out["classes"] = [{"value": str(k), "count": int(v)} for k, v in counts.head(50).items()]
    if len(counts) < 2:
        only = f" ({counts.index[0]!r})" if len(counts) else ""
        return [
            warning(
                "single_class",
                target,
                "high",
                f"The target {target!r} has a single class{only}: nothing to classify.",
                "Collect examples of the other class(es), or choose another target.",
            )
        ]
    minority = counts.iloc[-1] / counts.sum()
    ratio = counts.iloc[0] / max(1, counts.iloc[-1])
    out["imbalance_ratio"] = json_float(ratio)
    severity = next((s for bar, s in IMBALANCE_RATIOS if ratio >= bar), None)
    if severity is None:
        return []
    return [
        warning(
            "class_imbalance",
            target,
            severity,
            f"Class {counts.index[-1]!r} is {minority:.1%} of the rows (majority:minority {ratio:.0f}:1): "
            "accuracy will flatter the model.",
            "Split stratified (the default) and judge by pr_auc (average precision), f1 or balanced_accuracy "
            "rather than accuracy; use class weights and tune the decision threshold.",
            score=ratio,
            details={"ratio": ratio, "minority_share": minority, "metrics": list(IMBALANCE_METRICS)},
        )
    ]


def _numeric_target(tcol: dict, info: dict) -> list[dict]:
    target = tcol["name"]
    finite = info["finite"]
    out: list[dict] = []
    spike = end_spike(finite, tcol["unique"])
    if spike is not None and not (spike[0] == "min" and spike[1] == 0):
        end, value, count, per_value = spike
        share = count / len(finite)
        tcol["capped"] = {"end": end, "value": value, "rows": count}
        beyond = "above" if end == "max" else "below"
        out.append(
            warning(
                "target_capped",
                target,
                "high" if share >= 0.01 else "medium",
                f"The target {target!r} looks censored at its {end} {fmt_number(value)}: {count} rows ({share:.1%}) "
                f"sit exactly there, against about {per_value:.0f} per value nearby. Their true values are "
                f"{fmt_number(value)} or {beyond}, unknown: a model learns to stop at {fmt_number(value)}, and its "
                "errors on those rows are understated.",
                f"Decide whether predictions {beyond} {fmt_number(value)} matter. If not, keep the rows as they are "
                "(the cap is then the truth you need). If they do, evaluate with and without the capped rows, or "
                "model the capped share separately; do not silently drop them (that biases every other prediction).",
                score=share,
                details={"end": end, "value": value, "rows": count},
            )
        )
    skew = skewness(info["sample_values"]) if len(info["sample_values"]) else None
    if skew is not None and abs(skew) > TARGET_SKEW:
        positive = float(finite.min()) > 0
        top = np.sort(finite)[-max(1, len(finite) // 100) :]
        top_share = float(top.sum() / finite.sum()) if positive and finite.sum() > 0 else None
        weight = f"; the top 1% of rows hold {top_share:.0%} of its total" if top_share else ""
        transform = f"predicting log({target}) (a log column, transformed back for use) or " if positive else ""
        out.append(
            warning(
                "target_skewed",
                target,
                "low",
                f"The target {target!r} is strongly skewed (skewness {skew:+.1f}{weight}): squared-error training "
                "and rmse are dominated by its largest values.",
                f"Consider {transform}judging by mae, which weighs every row alike. Keep the large values: they are "
                "real cases the model must get right, not noise to remove.",
                score=abs(skew),
                details={"skew": skew, "metrics": list(SKEWED_TARGET_METRICS)},
            )
        )
    return out
