"""Send simulated traffic to a deployment: gradual drift, delayed ground truth (demo and tests).

    manage.py simulate_traffic --deployment 3 --n 2000 --drift 0.8 --hours 24 --feedback-delay 60 --snapshots

Instances are drawn from the model's training rows (its dataset version's train + validation
split, targets included). Over the simulated period the drift grows linearly from 0 to
`--drift`: the numeric feature whose training correlation with the target is most negative
(most positive for regression) is shifted by up to 3 standard deviations, and the ground
truth follows a changed concept (shifted rows above the training 75th percentile belong to the
positive class, or get a larger target), so ground truth reveals a performance drop that a model
retrained on production labels can fix. Feedback goes through `monitoring.services.feedback.feedback_record`
(the API's service), only for predictions older than `--feedback-delay` minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from datasets.selectors import split_frames
from deployments.ml.simulation import drifted_traffic
from deployments.models import Deployment, Prediction
from deployments.monitoring.services import config as monitoring_config
from deployments.monitoring.services import feedback as monitoring_feedback
from deployments.monitoring.services import snapshots as monitoring_snapshots
from deployments.serving import services as serving_services


@dataclass
class SimulationResult:
    predictions: int
    labelled: int
    drift_feature: str | None
    snapshots: int


def _positive(mv: Any) -> Any:
    """The class whose share the changed concept raises: the model's positive class."""
    return mv.positive_class if mv.positive_class is not None else (mv.classes or [None])[-1]


SIMULATED_REQUEST_SIZE = 50


def simulate(
    *,
    deployment: Any,
    n: int = 2000,
    drift: float = 0.5,
    hours: float = 24.0,
    feedback_delay_minutes: float = 60.0,
    label_rate: float = 1.0,
    seed: int = 0,
    snapshots: bool = False,
) -> SimulationResult:
    mv = deployment.model_version
    if mv.dataset_version is None:
        raise CommandError("The deployed model has no training dataset version to draw instances from.")
    parts = split_frames(mv.dataset_version)
    train = pd.concat([parts.train, parts.val], ignore_index=True)
    features = [f["name"] for f in mv.input_schema]
    rng = np.random.default_rng(seed)
    traffic = drifted_traffic(
        train=train,
        schema=mv.input_schema,
        target=mv.target,
        task_type=mv.task_type,
        positive=_positive(mv),
        n=n,
        drift=drift,
        rng=rng,
    )
    rows, actual, feature, progress = traffic.rows, traffic.actual, traffic.feature, traffic.progress
    now = timezone.now()
    start = now - timedelta(hours=hours)
    times = [start + (now - start) * float(p) for p in progress]
    inputs = rows[features].astype(object).where(rows[features].notna(), None).to_dict("records")
    inputs = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in inputs]
    # Through the real predict service (validation, scoring, logging, review routing), in small
    # requests; each request's rows are then dated back to its place in the simulated period.
    ids: list[str] = []
    for k in range(0, n, SIMULATED_REQUEST_SIZE):
        chunk = inputs[k : k + SIMULATED_REQUEST_SIZE]
        result = serving_services.predict(
            deployment=deployment, instances=chunk, caller="simulator", source="simulator"
        )
        chunk_ids = [p["id"] for p in result.predictions]
        Prediction.objects.filter(pk__in=chunk_ids).update(created_at=times[k])
        ids.extend(str(i) for i in chunk_ids)
    delay = timedelta(minutes=feedback_delay_minutes)
    items = [
        {
            "prediction_id": ids[i],
            "actual": actual.iloc[i].item() if hasattr(actual.iloc[i], "item") else actual.iloc[i],
        }
        for i in range(n)
        if times[i] + delay <= now and rng.random() < label_rate
    ]
    for k in range(0, len(items), monitoring_feedback.FEEDBACK_MAX_ITEMS):
        monitoring_feedback.feedback_record(
            deployment=deployment, items=items[k : k + monitoring_feedback.FEEDBACK_MAX_ITEMS], actor=None
        )
    made = 0
    if snapshots:
        interval = int(monitoring_config.monitoring_settings(deployment)["interval_minutes"])
        end = start + timedelta(minutes=interval)
        while end <= now + timedelta(seconds=1):
            monitoring_snapshots.snapshot_compute(deployment=deployment, window_end=end, window_minutes=interval)
            made += 1
            end += timedelta(minutes=interval)
    return SimulationResult(n, len(items), feature, made)


class Command(BaseCommand):
    help = "Send simulated traffic with gradual drift and delayed ground truth to a deployment."

    def add_arguments(self, parser):
        parser.add_argument("--deployment", type=int, required=True)
        parser.add_argument("--n", type=int, default=2000)
        parser.add_argument("--drift", type=float, default=0.5, help="0.0 (none) to 1.0 (strong)")
        parser.add_argument("--hours", type=float, default=24.0, help="period the traffic is spread over")
        parser.add_argument("--feedback-delay", type=float, default=60.0, help="minutes before ground truth arrives")
        parser.add_argument("--label-rate", type=float, default=1.0, help="share of predictions that get feedback")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--snapshots", action="store_true", help="compute one snapshot per interval of the period")

    def handle(self, *args, **opts):
        if not 0 <= opts["drift"] <= 1:
            raise CommandError("--drift must be between 0 and 1.")
        if not 1 <= opts["n"] <= 1_000_000:
            raise CommandError("--n must be between 1 and 1000000.")
        deployment = Deployment.objects.select_related("model_version", "project").filter(pk=opts["deployment"]).first()
        if deployment is None:
            raise CommandError(f"No deployment {opts['deployment']}.")
        result = simulate(
            deployment=deployment,
            n=opts["n"],
            drift=opts["drift"],
            hours=opts["hours"],
            feedback_delay_minutes=opts["feedback_delay"],
            label_rate=opts["label_rate"],
            seed=opts["seed"],
            snapshots=opts["snapshots"],
        )
        self.stdout.write(
            f"{result.predictions} predictions, {result.labelled} labelled, drift on {result.drift_feature}, "
            f"{result.snapshots} snapshots"
        )
