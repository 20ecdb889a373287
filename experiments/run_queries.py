"""Querying runs by their cross-validated metrics: `?ordering=-roc_auc`, `?roc_auc__gte=0.8`.

Metrics live in `Run.cv_metrics` (`{"roc_auc": {"mean": 0.91, "std": 0.02}, ...}`); a query
names a metric of the catalogue (`projects.metrics.METRICS`) and reads its CV mean through a
JSON key lookup the code builds itself: the parameter name is matched against the catalogue,
never handed to the ORM, so no `__` walk can reach another table.

Ordering is plain ascending / descending (`-` prefix) like every list; runs without the metric
(failed, queued, or of the other task type) come last either way. Ranges take
`<metric>__gte`, `__gt`, `__lte`, `__lt` (and `score__...`, the experiment's own metric).
"""

from __future__ import annotations

from django.db.models import F, FloatField, QuerySet
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

from mlplatform.api import valid_list
from mlplatform.errors import InvalidInput
from projects.metrics import METRICS, metrics_for

OPERATORS = {"gte": "gte", "gt": "gt", "lte": "lte", "lt": "lt"}


def _alias(metric: str) -> str:
    return f"cv_{metric}"


def metric_expression(metric: str):
    return Cast(KeyTextTransform("mean", KeyTransform(metric, "cv_metrics")), FloatField())


def metric_choices(task_type: str | None) -> list[str]:
    """Metrics a query may name: those of the runs' task when it is known, else every metric."""
    return metrics_for(task_type) if task_type else list(METRICS)


def check_metric(metric: str, task_type: str | None, *, field: str) -> None:
    if metric in metric_choices(task_type):
        return
    if metric in METRICS and task_type:
        info = METRICS[metric]
        raise InvalidInput(
            f"{info.label} is a {info.task_type} metric; these runs are {task_type}: "
            f"use {valid_list(metrics_for(task_type))}.",
            field=field,
        )
    raise InvalidInput(f"Unknown metric {metric!r}: use {valid_list(metric_choices(task_type))}.", field=field)


def range_filter_names() -> list[str]:
    return [f"{m}__{op}" for m in ["score", *METRICS] for op in OPERATORS]


def apply_ranges(queryset: QuerySet, params, task_type: str | None) -> QuerySet:
    """`roc_auc__gte=0.8` and friends; a value that is not a number is a 400 naming it."""
    for name, raw in params.items():
        metric, sep, op = name.rpartition("__")
        if not sep or op not in OPERATORS or (metric != "score" and metric not in METRICS):
            continue
        try:
            value = float(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be a number; got {raw!r}.", field=name) from None
        if metric == "score":
            queryset = queryset.filter(**{f"score__{op}": value})
            continue
        check_metric(metric, task_type, field=name)
        queryset = queryset.alias(**{_alias(metric): metric_expression(metric)}).filter(
            **{f"{_alias(metric)}__{op}": value}
        )
    return queryset


def order_by_terms(queryset: QuerySet, terms: list[str], task_type: str | None) -> QuerySet:
    """Plain fields and metric names, each ascending or `-` descending, missing values last."""
    order = []
    for term in terms:
        name = term.lstrip("-")
        descending = term.startswith("-")
        if name in METRICS:
            check_metric(name, task_type, field="ordering")
            queryset = queryset.alias(**{_alias(name): metric_expression(name)})
            name = _alias(name)
        expression = F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True)
        order.append(expression)
    return queryset.order_by(*order, "pk")
