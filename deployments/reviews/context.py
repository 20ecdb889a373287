"""One review item as the reviewer sees it: each feature against its training distribution, the
class probabilities, a per-instance attribution and similar past decisions."""

from __future__ import annotations

import bisect
import math
from typing import Any

import pandas as pd

from deployments.models import ModelVersion, ReviewItem
from deployments.reviews.routing import label_key
from deployments.reviews.selectors import DECIDED
from deployments.serving.selectors import model_for


def _feature_reference(model_version: ModelVersion, name: str) -> dict[str, Any]:
    stats = model_version.reference_stats if isinstance(model_version.reference_stats, dict) else {}
    features = stats.get("features") if isinstance(stats.get("features"), dict) else stats
    ref = features.get(name) if isinstance(features, dict) else None
    return ref if isinstance(ref, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percentile_from_reference(ref: dict[str, Any], value: float) -> float | None:
    """Where `value` sits in the training distribution, from whichever summary the model's
    reference statistics hold: a (sorted) sample or quantiles, else a histogram."""
    for key in ("sample", "sorted_sample", "quantiles"):
        points = ref.get(key)
        if isinstance(points, dict):
            points = list(points.values())
        if isinstance(points, list):
            nums = sorted(x for x in points if _is_number(x))
            if nums:
                return round(100 * bisect.bisect_left(nums, value) / len(nums), 1)
    edges = ref.get("edges") or ref.get("bins")
    counts = ref.get("counts") or ref.get("shares") or ref.get("ref")
    if isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 and sum(counts) > 0:
        total, below = float(sum(counts)), 0.0
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True):
            if not (_is_number(lo) and _is_number(hi) and _is_number(n)):
                return None
            if value >= hi:
                below += n
            elif value > lo:
                below += n * (value - lo) / (hi - lo)
        return round(100 * below / total, 1)
    return None


def feature_context(model_version: ModelVersion, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each feature's value beside its training distribution: where this value sits."""
    rows = []
    for col in model_version.input_schema or []:
        name = col.get("name")
        value = inputs.get(name)
        ref = _feature_reference(model_version, name)
        row: dict[str, Any] = {"name": name, "type": col.get("type", ""), "value": value, "note": ""}
        if col.get("type") in ("numeric", "boolean") or _is_number(value):
            lo, hi = col.get("min", ref.get("min")), col.get("max", ref.get("max"))
            row.update(min=lo, max=hi, median=col.get("median", ref.get("median")), mean=ref.get("mean"))
            percentile = _percentile_from_reference(ref, value) if _is_number(value) else None
            if percentile is not None:
                row["percentile"] = percentile
            elif _is_number(value) and _is_number(lo) and _is_number(hi) and hi > lo:
                row["position"] = round(100 * (value - lo) / (hi - lo), 1)
            if _is_number(value) and _is_number(lo) and _is_number(hi) and not lo <= value <= hi:
                row["note"] = "outside the training range"
        else:
            cats = col.get("categories") or []
            shares = ref.get("shares") or ref.get("frequencies") or ref.get("categories") or {}
            row["categories"] = cats[:30]
            if isinstance(shares, dict) and value is not None:
                row["share"] = shares.get(str(value))
            if value is not None and cats and str(value) not in {str(c) for c in cats}:
                row["note"] = "not seen in training"
        if value is None:
            row["note"] = "missing"
        rows.append(row)
    return rows


def _baseline_value(col: dict[str, Any], ref: dict[str, Any]) -> Any:
    for key in ("median", "mode"):
        if col.get(key) is not None:
            return col[key]
        if ref.get(key) is not None:
            return ref[key]
    if _is_number(col.get("min")) and _is_number(col.get("max")):
        return (col["min"] + col["max"]) / 2
    cats = col.get("categories") or []
    if cats:
        return cats[0]
    return None


def feature_attribution(model_version: ModelVersion, inputs: dict[str, Any], label: Any) -> dict[str, Any]:
    """Per-instance attribution: replace one feature at a time with its training median (numeric)
    or mode (categorical) and measure how much the predicted class's probability drops.

    One `predict_proba` over n_features + 1 rows. Cheap, model-agnostic and easy to explain to
    a reviewer ("without this income, the model would be 18 points less sure").
    """
    if model_version.task_type != "classification" or not model_version.input_schema:
        return {"features": [], "note": "Attribution is computed for classifiers."}
    try:
        model = model_for(model_version)
        columns = [c["name"] for c in model_version.input_schema]
        base = {c: inputs.get(c) for c in columns}
        rows = [base]
        for col in model_version.input_schema:
            row = dict(base)
            row[col["name"]] = _baseline_value(col, _feature_reference(model_version, col["name"]))
            rows.append(row)
        frame = pd.DataFrame(rows, columns=columns)
        proba = model.predict_proba(frame)
        classes = [label_key(c) for c in getattr(model, "classes_", model_version.classes)]
        idx = classes.index(label_key(label))
    except Exception as exc:  # noqa: BLE001 - the reviewer still gets the rest of the page
        return {"features": [], "note": f"Attribution unavailable: {type(exc).__name__}."}
    p0 = float(proba[0][idx])
    out = []
    for i, col in enumerate(model_version.input_schema, start=1):
        delta = p0 - float(proba[i][idx])
        out.append(
            {
                "name": col["name"],
                "value": base[col["name"]],
                "baseline": rows[i][col["name"]],
                "contribution": round(delta, 4),
            }
        )
    out.sort(key=lambda r: -abs(r["contribution"]))
    return {"features": out, "probability": round(p0, 4), "note": ""}


def similar_decisions(item: ReviewItem, limit: int = 5) -> list[dict[str, Any]]:
    """Nearest decided items of the same deployment: numeric features scaled by their training
    range, a mismatch of a categorical counts as 1. The last 500 decisions are searched."""
    schema = item.prediction.model_version.input_schema or []
    inputs = item.prediction.inputs or {}
    candidates = (
        ReviewItem.objects.filter(deployment_id=item.deployment_id, status__in=DECIDED)
        .exclude(pk=item.pk)
        .select_related("prediction", "decided_by")
        .order_by("-decided_at")[:500]
    )
    scored = []
    for other in candidates:
        o = other.prediction.inputs or {}
        d = 0.0
        for col in schema:
            a, b = inputs.get(col["name"]), o.get(col["name"])
            if _is_number(a) and _is_number(b):
                lo, hi = col.get("min"), col.get("max")
                span = (hi - lo) if _is_number(lo) and _is_number(hi) and hi > lo else max(abs(a), abs(b), 1.0)
                d += ((a - b) / span) ** 2
            else:
                d += 0.0 if a == b else 1.0
        scored.append((math.sqrt(d), other))
    scored.sort(key=lambda x: x[0])
    return [
        {
            "id": other.pk,
            "distance": round(dist, 3),
            "model_label": other.model_label,
            "final_label": other.final_label,
            "status": other.status,
            "confidence": other.confidence,
            "decided_by": other.decided_by.get_username() if other.decided_by else None,
            "comment": other.comment,
        }
        for dist, other in scored[:limit]
    ]


def review_item_detail(*, item: ReviewItem) -> dict[str, Any]:
    mv = item.prediction.model_version
    probs = item.prediction.probabilities
    if isinstance(probs, dict):
        probabilities = sorted(({"label": k, "p": v} for k, v in probs.items()), key=lambda r: -(r["p"] or 0))
    elif isinstance(probs, list) and len(probs) == len(mv.classes or []):
        probabilities = sorted(
            ({"label": label_key(c), "p": p} for c, p in zip(mv.classes, probs, strict=True)),
            key=lambda r: -(r["p"] or 0),
        )
    else:
        probabilities = []
    return {
        "features": feature_context(mv, item.prediction.inputs or {}),
        "probabilities": probabilities,
        "attribution": feature_attribution(mv, item.prediction.inputs or {}, item.model_label),
        "similar": similar_decisions(item),
        "classes": [label_key(c) for c in (mv.classes or [])],
        "task_type": mv.task_type,
    }
