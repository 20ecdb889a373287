"""Rollout's reads: deployments of my projects, a deployment's history, the version a rollback
returns to, the curl example of its page, the decision threshold's expected effect."""

from __future__ import annotations

import json
import shlex
from typing import Any

import numpy as np
from django.db.models import QuerySet

from deployments.ml.schema import sample_instance
from deployments.models import Deployment, DeploymentChange, ModelVersion
from deployments.reviews.selectors import review_band, reviewed_outcomes
from experiments.ml import costs
from experiments.ml.metrics import binary_counts_ci
from experiments.selectors import run_cost_analysis
from projects.access import scope

DEFAULT_THRESHOLD = 0.5  # a binary classifier without one decides the most probable class


def deployment_list(*, user: Any, project: Any = None) -> QuerySet[Deployment]:
    qs = scope(Deployment.objects.select_related("model_version", "shadow_model_version", "project"), user)
    return qs.filter(project=project) if project is not None else qs


def deployment_history(deployment: Deployment) -> QuerySet[DeploymentChange]:
    return deployment.changes.select_related("from_version", "to_version", "actor")


def previous_version(deployment: Deployment) -> ModelVersion | None:
    """The version that was active before the current one (the last version change's origin)."""
    change = (
        deployment.changes.filter(action__in=("deploy", "promote", "rollback"), to_version=deployment.model_version_id)
        .select_related("from_version")
        .first()
    )
    return change.from_version if change else None


def curl_example(deployment: Deployment, base_url: str) -> str:
    """A curl command safe to paste: every piece that comes from data (the body, built from column
    names and category values, and the URL) is one shell word through `shlex.quote`, so no quote,
    `$(...)`, backtick or newline in a name can end the quoting. `$API_KEY` is the one expansion,
    on purpose: the reader's own environment variable."""
    instance = sample_instance(deployment.model_version.input_schema)
    body = json.dumps({"instances": [instance]})
    url = f"{base_url}/api/v1/deployments/{deployment.pk}/predict/"
    return (
        f"curl -s -X POST {shlex.quote(url)} \\\n"
        '  -H "Authorization: Api-Key $API_KEY" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )


def is_binary(version: ModelVersion) -> bool:
    """A classifier of exactly two classes: the only kind a decision threshold applies to."""
    return version.task_type == "classification" and len(version.classes or []) == 2


def threshold_history(deployment: Deployment) -> QuerySet[DeploymentChange]:
    return deployment.changes.filter(action="threshold").select_related("to_version", "actor")


def _counts(row: dict[str, Any], n: int) -> tuple[int, int, int, int] | None:
    """A threshold-table row's confusion counts (tp, fp, fn, tn), rebuilt from its rounded shares."""
    pp = int(row.get("predicted_positive", -1))
    precision, accuracy = row.get("precision"), row.get("accuracy")
    if pp < 0 or precision is None or accuracy is None:
        return None
    tp = round(float(precision) * pp)
    tn = round(float(accuracy) * n) - tp
    fp = pp - tp
    fn = n - tp - fp - tn
    return (tp, fp, fn, tn) if min(tp, fp, fn, tn) >= 0 else None


def threshold_effect(deployment: Deployment) -> dict[str, Any]:
    """What each decision threshold would do, on the validation rows of the version's run.

    The run's diagnostics scored its validation rows with the model fitted on the training rows
    (the deployed model is refit on train + validation, so these are the honest out-of-sample
    figures) and stored precision, recall, F1 and accuracy at thresholds 0.05 to 0.95. The
    confusion counts are rebuilt from them and every figure gets a 95% bootstrap interval.
    """
    version = deployment.model_version
    current = deployment.active_threshold
    out: dict[str, Any] = {
        "binary": is_binary(version),
        "current": current,
        "effective": current if current is not None else DEFAULT_THRESHOLD,
        "positive_class": version.positive_class,
        "rows": [],
        "available": False,
        "why": "",
    }
    if not out["binary"]:
        out["why"] = "Only a binary classifier has a decision threshold."
        return out
    diagnostics = (version.run.diagnostics if version.run_id and version.run else None) or {}
    table, n = diagnostics.get("thresholds") or [], int(diagnostics.get("n_val") or 0)
    if not table or n <= 0:
        out["why"] = "No validation threshold table for this version (run its diagnostics on the experiment page)."
        return out
    table_positive = diagnostics.get("positive_class")
    if (
        table_positive is not None
        and version.positive_class is not None
        and str(table_positive) != str(version.positive_class)
    ):
        out["why"] = f"The validation table is about class {table_positive!r}, not {version.positive_class!r}."
        return out
    for row in table:
        counts = _counts(row, n)
        if counts is None:
            continue
        t = float(row["threshold"])
        out["rows"].append({"threshold": t, "predicted_positive": counts[0] + counts[1], **binary_counts_ci(*counts)})
    if not out["rows"]:
        out["why"] = "The validation threshold table could not be read."
        return out
    best = max(out["rows"], key=lambda r: (r["f1"]["value"] or 0.0, -abs(r["threshold"] - DEFAULT_THRESHOLD)))
    for r in out["rows"]:
        r["current"] = abs(r["threshold"] - out["effective"]) < 1e-9
        r["best_f1"] = r is best
    out |= {"available": True, "n_val": n, "best_f1": best}
    out["at_current"] = effect_at(out, out["effective"])
    # Not advice on noise: when the current F1 lies inside the best one's interval, say so.
    out["advice_uncertain"] = any(
        (r["f1"]["value"] or 0.0) >= (best["f1"]["ci_low"] or 0.0) for r in out["at_current"] if r is not best
    )
    return out


def effect_at(effect: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """The table row at `threshold`, or the two rows around it (the table has steps of 0.05)."""
    rows = effect.get("rows") or []
    exact = [r for r in rows if abs(r["threshold"] - threshold) < 1e-9]
    if exact:
        return exact
    below = [r for r in rows if r["threshold"] < threshold]
    above = [r for r in rows if r["threshold"] > threshold]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


# The live re-estimate is shown from 30 reviewer decisions (with a QC sample). It replaces the
# validation rows as the basis of the advice only from 150 QC-sample decisions (the only labels
# outside the band): benchmarks/cost_decisions.py found its choice still worse than the
# validation one at a few hundred decisions (under 100 from the sample), better at ~1,250 (~180).
LIVE_MIN_DECIDED = 30
LIVE_ADVICE_MIN_SAMPLE = 150


def _classes(version: ModelVersion) -> tuple[Any, Any]:
    classes = list(version.classes or [])
    positive = version.positive_class if version.positive_class is not None else classes[-1]
    negative = next(c for c in classes if str(c) != str(positive))
    return positive, negative


def cost_effect(deployment: Deployment) -> dict[str, Any]:
    """Decisions by cost on this deployment: what the project's cost matrix makes of each decision
    threshold and review band, on the version's validation rows and, re-estimated, on live
    traffic from reviewer decisions; with the cost of the current setting and advice only when
    the saving's 95% interval is above zero."""
    version = deployment.model_version
    project = deployment.project
    out: dict[str, Any] = {"available": False, "why": "", "validation": None, "live": None, "advice": None}
    try:
        cm = costs.cost_matrix_parse(project.cost_matrix)
    except costs.CostMatrixError:
        cm = None
    if cm is None:
        out["why"] = "The project has no cost matrix (set one in its problem statement)."
        return out
    if not is_binary(version):
        out["why"] = "Decisions by cost apply to a binary classifier."
        return out
    positive, negative = _classes(version)
    threshold = deployment.active_threshold if deployment.active_threshold is not None else DEFAULT_THRESHOLD
    low, high = review_band(deployment, positive, negative)
    current = costs.current_band(threshold, low, high)
    out |= {"available": True, "positive_class": positive, "unit": cm.unit, "cost_matrix": cm.as_dict()}
    out["current"] = {"threshold": threshold, "band": [current[1], current[2]] if current[2] > current[1] else None}
    validation = run_cost_analysis(version.run, cm, current=current) if version.run_id else None
    if validation and validation.get("available") and str(validation.get("positive_class")) != str(positive):
        # Scores of the other class would price every setting backwards.
        validation = {
            "available": False,
            "why": f"The validation scores are about class {validation['positive_class']!r}, not {positive!r}.",
        }
    out["validation"] = validation
    live = reviewed_outcomes(deployment=deployment, version=version, positive=positive)
    live_info: dict[str, Any] = {
        "decided": live["decided"],
        "sample": live["sample"],
        "pending": live["pending"],
        "available": False,
        "why": "",
    }
    if live["decided"] < LIVE_MIN_DECIDED:
        live_info["why"] = f"{live['decided']} reviewer decisions so far; the live estimate needs {LIVE_MIN_DECIDED}."
    elif not live["sample"]:
        live_info["why"] = (
            "Reviewers only see the review band: without a QC sample (review policy sample_rate) there are "
            "no labels outside it to judge other thresholds."
        )
    else:
        bins = costs.bins_of(np.asarray(live["scores"]))
        pos = np.asarray(live["positive"], dtype=bool)
        w = np.asarray(live["weights"], dtype=float)
        hist = costs.score_hist(np.asarray(live["scores"]), pos, w)
        analysis = costs.cost_analysis(
            hist, cm, current=current, replicates=costs.weighted_replicates(bins, pos, w, n_boot=costs.BOOTSTRAP)
        )
        live_info |= {"available": True, "analysis": analysis, "chart": costs.chart(analysis)}
    out["live"] = live_info
    # Live data, once there is enough of it, outranks validation rows (it is the traffic served).
    live_basis = live_info.get("analysis")
    validation_basis = validation.get("analysis") if validation else None
    use_live = live_basis is not None and (live["sample"] >= LIVE_ADVICE_MIN_SAMPLE or validation_basis is None)
    basis = live_basis if use_live else validation_basis
    if basis is not None:
        best = basis["best"]
        out["advice"] = {
            "source": "live" if use_live else "validation",
            "threshold": best["threshold"],
            "band": best["band"],
            "cost": best["cost"],
            "cost_ci": best["cost_ci"],
            "review_share": best.get("review_share"),
            "current_cost": basis["current"]["cost"],
            "saving": basis["saving"],
            "advise": basis["advise"],
            "n": basis["n"],
        }
    return out
