"""Projects whose success metric is ROC AUC, log loss or MAPE: live performance alerts on it, and
after a retrain a better challenger passes the promotion gate (with a real Celery worker).

Live performance, the final evaluation and the retrain's comparison compute these metrics with
the same module (experiments.ml.metrics); before, monitoring had its own metrics without them,
so such a project's challenger could never pass the gate.
"""

from __future__ import annotations

import numpy as np
import pytest

from deployments.models import Alert, ModelVersion
from deployments.monitoring.services.feedback import feedback_record
from deployments.serving.services import predict
from tests.conftest import wait_for_job
from tests.monitoring.helpers import FEATURES, make_deployment, make_frame

CASES = [
    # metric, task, threshold, baseline (the bar of the problem statement)
    ("roc_auc", "classification", 0.6, 0.55),
    ("log_loss", "classification", 0.9, 1.0),
    ("mape", "regression", 0.2, 0.3),
]


def changed_concept_traffic(deployment, *, n: int, task: str, seed: int = 5) -> None:
    """Predictions through the predict service, then their ground truth from a changed concept:
    x1 no longer matters and x2, which the champion ignores, now does. A retrain can learn it
    (unlike a shift of the inputs, which leaves a ranking metric such as ROC AUC unchanged)."""
    frame = make_frame(n=n, seed=seed, task=task)
    x, noise = frame[FEATURES], np.random.default_rng(seed).normal(scale=0.5, size=n)
    if task == "classification":
        actual = ((1.5 * x["x0"] + 2.5 * x["x2"] + noise) > 0).astype(int).tolist()
    else:
        actual = (50 + 3 * x["x0"] + 5 * x["x2"] + noise).round(3).tolist()
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in x.to_dict("records")]
    ids: list[str] = []
    for k in range(0, n, 50):
        result = predict(deployment=deployment, instances=rows[k : k + 50], caller="test", source="simulator")
        ids += [p["id"] for p in result.predictions]
    feedback_record(
        deployment=deployment,
        items=[{"prediction_id": i, "actual": a} for i, a in zip(ids, actual, strict=True)],
        actor=None,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("metric", "task", "threshold", "baseline"), CASES)
def test_live_alert_then_a_better_challenger_passes_the_gate(worker, team, api, metric, task, threshold, baseline):
    project = team.project
    project.task_type, project.success_metric = task, metric
    project.success_threshold, project.baseline_score, project.decision = threshold, baseline, "go"
    project.save()
    deployment = make_deployment(project, team.owner, task=task, metric=metric, evaluate=True)
    champion = deployment.model_version
    assert champion.metrics["test"][metric]["ci_low"] is not None
    client = api("editor")

    changed_concept_traffic(deployment, n=900, task=task)
    res = client.post(f"/api/v1/deployments/{deployment.pk}/snapshot/", {"window_minutes": 60}, format="json")
    assert wait_for_job(res.json()["id"]).status == "succeeded"
    live = client.get(f"/api/v1/deployments/{deployment.pk}/monitoring/").json()["latest"]["performance"]
    assert live["metrics"][metric]["status"] == "alert", live
    assert Alert.objects.filter(deployment=deployment, key=f"performance:{metric}", state="firing").exists()

    res = client.post(f"/api/v1/deployments/{deployment.pk}/retrain/", {}, format="json")
    job = wait_for_job(res.json()["id"], timeout=180)
    assert job.status == "succeeded", job.error
    comparison = job.result
    assert comparison["primary_metric"] == metric
    assert comparison["lower_is_better"] is (metric in ("log_loss", "mape"))
    champion_score = comparison["champion"]["metrics"][metric]["value"]
    challenger_score = comparison["challenger"]["metrics"][metric]["value"]
    assert comparison["challenger_better"] is True, (champion_score, challenger_score)
    challenger = ModelVersion.objects.get(pk=comparison["challenger_id"])
    assert challenger.metrics["test"][metric]["value"] == challenger_score

    res = client.post(
        f"/api/v1/deployments/{deployment.pk}/challenger/promote/", {"model_version": challenger.pk}, format="json"
    )
    assert res.status_code == 200, res.content
    deployment.refresh_from_db()
    assert deployment.model_version_id == challenger.pk
