"""Workflow stage providers (see projects.workflow.stage)."""

from __future__ import annotations

from django.urls import reverse

from datasets.models import DatasetVersion, VersionStatus
from projects.models import Project
from projects.services import StageState
from projects.workflow import stage


@stage("data")
def _data(project: Project, states: dict[str, StageState]) -> StageState:
    url = reverse("datasets:list", args=[project.pk])
    versions = DatasetVersion.objects.filter(project=project)
    ready = versions.filter(status=VersionStatus.READY)
    split = ready.filter(test_locked=True).exclude(split_key="").order_by("-created_at").first()
    if split is not None:
        counts = (split.split or {}).get("counts", {})
        high = [w for w in split.warnings if w.get("severity") == "high"]
        detail = (
            f"{split.dataset.name} v{split.number}: {split.row_count} rows, split "
            f"{counts.get('train', 0)}/{counts.get('validation', 0)}/{counts.get('test', 0)} with a locked test set."
        )
        if high:
            detail += f" {len(high)} high-severity warning(s) to review."
        return StageState("data", "Data", "done", detail, "", reverse("datasets:version", args=[split.pk]))
    if ready.exists():
        latest = ready.order_by("-created_at").first()
        nxt = (
            "Choose the target column, review the warnings, then split train / validation / locked test."
            if not latest.target_column
            else "Review the warnings and split the data into train / validation / locked test."
        )
        return StageState(
            "data",
            "Data",
            "in_progress",
            f"{latest.dataset.name} v{latest.number} is ready ({latest.row_count} rows) but not split.",
            nxt,
            reverse("datasets:version", args=[latest.pk]),
        )
    if versions.filter(status=VersionStatus.PROCESSING).exists():
        return StageState(
            "data", "Data", "in_progress", "Data is being read and profiled.", "Wait for the profile.", url
        )
    if versions.filter(status=VersionStatus.FAILED).exists():
        return StageState(
            "data",
            "Data",
            "blocked",
            "The last data import failed.",
            "Fix the file (see its error) and upload again.",
            url,
        )
    return StageState(
        "data",
        "Data",
        "todo",
        "No data yet.",
        "Upload a CSV / Parquet / JSON lines file, pull a URL or query a database.",
        url,
    )
