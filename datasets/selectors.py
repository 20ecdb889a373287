"""Reads of version data. The locked test rows are reachable only through `locked_test_frame`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from datasets import splitting
from datasets.models import DatasetVersion, VersionStatus
from datasets.storage import assignment_load, frame_load
from mlplatform.errors import InvalidInput


@dataclass
class SplitFrames:
    train: pd.DataFrame
    val: pd.DataFrame


def version_frame(version: DatasetVersion, columns: list[str] | None = None) -> pd.DataFrame:
    """Every row of a ready version (exploration, preview). Not for training: use split_frames."""
    if not version.storage_key:
        raise InvalidInput(f"Version {version.number} has no data yet (status: {version.status}).", field="version")
    return frame_load(version.storage_key, columns=columns)


def split_assignment(version: DatasetVersion) -> np.ndarray:
    if not version.split_key:
        raise InvalidInput("This dataset version has no train / validation / test split yet.", field="dataset_version")
    return assignment_load(version.split_key)


def split_frames(version: DatasetVersion) -> SplitFrames:
    """Training and validation rows. The locked test rows are never returned here."""
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The dataset version is {version.status}.", field="dataset_version")
    assignment = split_assignment(version)
    frame = version_frame(version)
    return SplitFrames(
        train=frame[assignment == splitting.TRAIN].reset_index(drop=True),
        val=frame[assignment == splitting.VAL].reset_index(drop=True),
    )


def locked_test_frame(version: DatasetVersion, *, purpose: str) -> pd.DataFrame:
    """The locked test rows. Only the one final evaluation may call this (`purpose` says which)."""
    if purpose != "final_evaluation":
        raise PermissionError("The locked test set is read only by the final evaluation.")
    assignment = split_assignment(version)
    frame = version_frame(version)
    return frame[assignment == splitting.TEST].reset_index(drop=True)


def version_sample(version: DatasetVersion, rows: int = 500) -> pd.DataFrame:
    """The first rows outside the locked test set (for recipe checks and previews)."""
    from datasets.storage import frame_head

    if not version.storage_key:
        raise InvalidInput(f"Version {version.number} has no data yet (status: {version.status}).", field="version")
    if not version.split_key:
        return frame_head(version.storage_key, rows)
    assignment = split_assignment(version)
    wanted = int(np.searchsorted(np.cumsum(assignment != splitting.TEST), rows)) + 1
    head = frame_head(version.storage_key, wanted)
    return head[assignment[: len(head)] != splitting.TEST].head(rows).reset_index(drop=True)


def visible_rows(version: DatasetVersion) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Every row but the locked test rows, with each row's split part (None before a split)."""
    frame = version_frame(version)
    if not version.split_key:
        return frame, None
    assignment = split_assignment(version)
    keep = assignment != splitting.TEST
    return frame[keep].reset_index(drop=True), assignment[keep]


def dataset_list(*, user, project=None):
    from datasets.models import Dataset
    from projects.access import scope

    qs = scope(Dataset.objects.all(), user)
    if project is not None:
        qs = qs.filter(project=project)
    return qs.distinct()
