"""Ground truth for logged predictions (the feedback API and the simulator): all or nothing."""

from __future__ import annotations

import math
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from deployments.events import feedback_recorded_event
from deployments.models import Deployment, ModelVersion, Prediction
from deployments.serving.services import predictions_flush
from mlplatform.errors import InvalidInput, NotFound

FEEDBACK_MAX_ITEMS = 10_000


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b)


def _coerce_actual(value: Any, mv: ModelVersion, field: str) -> Any:
    if value is None or isinstance(value, (dict, list)):
        raise InvalidInput("A single label or number is required.", field=field)
    if mv.task_type == "classification":
        classes = mv.classes or []
        for c in classes:
            # JSON clients may send 1 or "1" for the class 1: compare as text, store the class itself.
            if _same(c, value):
                return c
        raise InvalidInput(f"Not one of the model's classes {classes!r}.", field=field)
    if isinstance(value, bool):
        raise InvalidInput("A number is required.", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput("A number is required.", field=field) from None
    if not math.isfinite(number):
        raise InvalidInput("A finite number is required.", field=field)
    return number


def feedback_record(
    *, deployment: Deployment, items: list[dict[str, Any]], actor: Any, caller: str = ""
) -> dict[str, Any]:
    """Record ground truth for predictions of `deployment`. All or nothing.

    Each item is {"prediction_id", "actual"}; the prediction must belong to this deployment
    (another deployment's or project's id is refused, naming the item). The label is checked
    against the model that made the prediction (its classes, or a finite number). A label sent
    again for the same prediction replaces the first: the answer says so (one item:
    `"replaced": true` and `"previous_actual"`; several: how many were replaced and which).
    """
    if not isinstance(items, list) or not items:
        raise InvalidInput("At least one item is required.", field="items")
    if len(items) > FEEDBACK_MAX_ITEMS:
        raise InvalidInput(f"At most {FEEDBACK_MAX_ITEMS} items per request.", field="items")
    prefix = "items" if len(items) > 1 else ""
    parsed: dict[uuid.UUID, Any] = {}
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]." if prefix else ""
        if not isinstance(item, dict):
            raise InvalidInput("Each item is an object {prediction_id, actual}.", field=f"items[{i}]")
        if "actual" not in item:
            raise InvalidInput("This field is required.", field=f"{where}actual")
        try:
            pid = uuid.UUID(str(item.get("prediction_id")))
        except ValueError:
            raise InvalidInput("Not a prediction id.", field=f"{where}prediction_id") from None
        if pid in parsed:
            raise InvalidInput("Duplicate prediction id in this request.", field=f"{where}prediction_id")
        parsed[pid] = (i, item["actual"])

    def lookup() -> dict[uuid.UUID, Prediction]:
        qs = Prediction.objects.filter(deployment=deployment, pk__in=list(parsed)).select_related("model_version")
        return {p.pk: p for p in qs}

    found = lookup()
    if len(found) < len(parsed):
        predictions_flush()  # predictions answered a moment ago may still be on their way to the log
        found = lookup()
    updates: list[Prediction] = []
    replaced: list[dict[str, Any]] = []
    now = timezone.now()
    for pid, (i, actual) in parsed.items():
        where = f"{prefix}[{i}]." if prefix else ""
        pred = found.get(pid)
        if pred is None:
            raise NotFound(
                f"Prediction {pid} is not a prediction of this deployment.",
                field=f"{where}prediction_id",
            )
        value = _coerce_actual(actual, pred.model_version, f"{where}actual")
        if pred.actual is not None:  # sent before (or labelled by a review): the new label replaces it
            replaced.append({"prediction_id": str(pid), "previous_actual": pred.actual})
        pred.actual = value
        pred.actual_source = "feedback"
        pred.actual_at = now
        updates.append(pred)
    with transaction.atomic():
        Prediction.objects.bulk_update(updates, ["actual", "actual_source", "actual_at"], batch_size=1000)
        feedback_recorded_event(actor=actor, deployment=deployment, count=len(updates), caller=caller)
    if not prefix:  # one item: whether it replaced a label, and which
        previous = replaced[0]["previous_actual"] if replaced else None
        return {"recorded": 1, "replaced": bool(replaced), "previous_actual": previous}
    return {"recorded": len(updates), "replaced": len(replaced), "replaced_items": replaced}
