"""A model version's card: the problem it answers, its data, its metrics and its limitations."""

from __future__ import annotations

from typing import Any

from projects.models import Project


def model_card(
    *,
    project: Project,
    dataset_name: str,
    dataset_number: int,
    target: str,
    features: list[str],
    algorithm: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    test: dict[str, Any],
    n_rows: int,
) -> dict[str, Any]:
    """The card written when the version is registered (`with_schema` adds what its preparation learns)."""
    metric = test.get("metric") or project.success_metric
    main = (test.get("metrics") or {}).get(metric) or {}
    limitations = [
        "Trained on "
        f"{n_rows} rows of dataset “{dataset_name}” version {dataset_number}; inputs unlike them (new categories, "
        "values outside the training ranges) give less reliable predictions.",
    ]
    if main.get("ci_low") is not None:
        limitations.append(
            f"The test {metric} of {main.get('value'):.4g} has a 95% interval of "
            f"[{main.get('ci_low'):.4g}, {main.get('ci_high'):.4g}] over {test.get('n_test', '?')} test rows."
        )
    verdict = test.get("verdict")
    if verdict:
        limitations.append(
            f"Final evaluation verdict: {verdict.get('text') if isinstance(verdict, dict) else verdict}."
        )
    return {
        "problem": {
            "objective": project.objective,
            "usage": project.usage,
            "current_solution": project.current_solution,
            "success_metric": project.success_metric,
            "success_threshold": project.success_threshold,
            "baseline_score": project.baseline_score,
        },
        "data": {
            "dataset": dataset_name,
            "dataset_version": dataset_number,
            "target": target,
            "training_rows": n_rows,
            "features": features,
        },
        "model": {"algorithm": algorithm, "params": params},
        "metrics": metrics,
        "limitations": limitations,
    }


def with_schema(card: dict[str, Any], schema: list[dict[str, Any]], n_rows: int) -> dict[str, Any]:
    """The card once the training rows were read: their exact count and an example range."""
    card = dict(card)
    data = dict(card.get("data") or {})
    data["training_rows"] = n_rows
    card["data"] = data
    numeric = [f for f in schema if f["type"] == "numeric" and "min" in f]
    limitations = list(card.get("limitations") or [])
    if numeric and not any(line.startswith("Example range") for line in limitations):
        f = numeric[0]
        limitations.insert(1, f"Example range seen in training: {f['name']} from {f['min']} to {f['max']}.")
    card["limitations"] = limitations
    return card
