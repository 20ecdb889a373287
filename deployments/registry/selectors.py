"""The registry's reads: model versions, the promotion gate's verdict, the usage snippet, the
drift reference's arrays."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from django.db.models import QuerySet

from deployments.ml.reference import arrays_from_npz
from deployments.ml.schema import sample_instance
from deployments.models import ModelVersion, ReferenceStatus
from mlplatform.artifacts import read_verified
from projects.access import scope
from projects.metrics import METRICS, beats
from projects.models import Decision, GateStrictness, Project


def model_version_list(*, user: Any, project: Any = None) -> QuerySet[ModelVersion]:
    qs = scope(ModelVersion.objects.select_related("created_by", "project"), user)
    return qs.filter(project=project) if project is not None else qs


def version_unready_reason(version: ModelVersion) -> str:
    """Why this version cannot serve yet ("" when it can): its preparation job builds the input
    schema the API validates against and the drift reference monitoring compares with."""
    if version.archived_at is not None:
        return (
            f"v{version.version}'s files were deleted by the model retention on {version.archived_at:%Y-%m-%d} "
            "(MODEL_VERSION_RETENTION_DAYS): it cannot serve again. To serve it again, train it again in a new experiment."
        )
    if version.reference_status == ReferenceStatus.PENDING:
        return f"v{version.version} is being prepared (input schema, drift reference): deployable once that job ends."
    if version.reference_status == ReferenceStatus.FAILED:
        return f"v{version.version} could not be prepared: {version.reference_error or 'the job failed'}."
    return ""


# --- promotion gate ----------------------------------------------------------------------------


@dataclass
class GateResult:
    passed: bool
    metric: str
    strictness: str
    score: float | None
    baseline: float | None
    threshold: float | None
    decision: str
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_check(model_version: ModelVersion, project: Project) -> GateResult:
    """Can this version be deployed? Its final test score must beat the baseline and meet the bar.

    With strictness `lower_bound`, the pessimistic end of the 95% interval is compared (the low
    end for a higher-is-better metric, the high end for an error metric such as RMSE).
    """
    metric = project.success_metric or (model_version.metrics or {}).get("metric") or ""
    reasons: list[str] = []
    unready = version_unready_reason(model_version)
    if unready:
        reasons.append(unready)
    entry = ((model_version.metrics or {}).get("test") or {}).get(metric)
    score: float | None = None
    if metric not in METRICS:
        reasons.append("The project has no success metric.")
    elif not isinstance(entry, dict) or entry.get("value") is None:
        reasons.append(f"The version has no final test evaluation of {metric}.")
    else:
        if project.gate_strictness == GateStrictness.LOWER_BOUND:
            end = "ci_low" if METRICS[metric].higher_is_better else "ci_high"
            score = entry.get(end)
            if score is None:
                reasons.append(f"The final evaluation has no 95% interval for {metric}.")
        else:
            score = entry["value"]
    if score is not None:
        what = (
            "the 95% interval's pessimistic end"
            if project.gate_strictness == GateStrictness.LOWER_BOUND
            else "the test score"
        )
        if project.baseline_score is None:
            reasons.append("The project has no baseline score to beat.")
        elif not beats(metric, score, project.baseline_score) or score == project.baseline_score:
            reasons.append(f"{metric}: {what} {score:.4g} does not beat the baseline {project.baseline_score:.4g}.")
        if project.success_threshold is None:
            reasons.append("The project has no success threshold.")
        elif not beats(metric, score, project.success_threshold):
            reasons.append(
                f"{metric}: {what} {score:.4g} does not meet the success threshold {project.success_threshold:.4g}."
            )
    if project.decision != Decision.GO:
        reasons.append(f"The project's go / no-go decision is “{project.get_decision_display()}”, not go.")
    return GateResult(
        passed=not reasons,
        metric=metric,
        strictness=project.gate_strictness,
        score=score,
        baseline=project.baseline_score,
        threshold=project.success_threshold,
        decision=project.decision,
        reasons=reasons,
    )


def usage_snippet(version: ModelVersion, filename: str | None = None) -> str:
    """Python that loads the downloaded file with skops (allowlist, hash check) and predicts.

    Safe to paste: every value that comes from data (the sample row, built from column names and
    category values, the file name, the hash) is a Python literal made by `repr` of a `str`, so no
    quote, backslash or newline in a name can end its string; the row is JSON read by `json.loads`."""
    filename = filename or f"model-v{version.version}.skops"
    instance = sample_instance(version.input_schema)
    predict = "predict_proba" if version.task_type == "classification" else "predict"
    row = json.dumps([instance])
    return (
        "import hashlib\n"
        "import json\n\n"
        "import pandas as pd\n"
        "import skops.io as sio\n\n"
        f"path = {str(filename)!r}\n"
        f"expected_sha256 = {str(version.sha256)!r}\n"
        'with open(path, "rb") as fh:\n'
        "    data = fh.read()\n"
        'assert hashlib.sha256(data).hexdigest() == expected_sha256, "file changed since registration"\n'
        "# Review the types skops reports before trusting them; never trust them blindly.\n"
        "print(sio.get_untrusted_types(data=data))\n"
        "model = sio.loads(data, trusted=[...])  # paste the reviewed list here\n\n"
        f"X = pd.DataFrame(json.loads({row!r}))\n"
        "print(model.predict(X))\n" + (f"print(model.{predict}(X))\n" if predict != "predict" else "")
    )


@lru_cache(maxsize=16)
def _arrays_cached(key: str, sha256: str) -> dict[str, np.ndarray]:
    return arrays_from_npz(read_verified(key, sha256))


def reference_arrays(reference_stats: dict[str, Any]) -> dict[str, np.ndarray]:
    """A version's sorted reference samples (cached per process: the file is immutable, named by hash)."""
    key = reference_stats.get("arrays_key")
    if not key:
        return {}
    return _arrays_cached(key, reference_stats.get("arrays_sha256", ""))


def prepare_job(version: ModelVersion) -> Any:
    """The newest `model_version.prepare` job of this version (None for versions made before jobs)."""
    from jobs.models import Job

    return (
        Job.objects.filter(project_id=version.project_id, kind="model_version.prepare", target_id=version.pk)
        .order_by("-pk")
        .first()
    )


def run_registration(run: Any) -> dict[str, Any]:
    """What the run page's register card shows: the version this run became, or whether it can be registered."""
    version = ModelVersion.objects.filter(run=run).first()
    experiment = run.experiment
    evaluated = experiment.evaluated_run_id == run.pk and bool(experiment.test_evaluation)
    return {"version": version, "job": prepare_job(version) if version else None, "can_register": evaluated}
