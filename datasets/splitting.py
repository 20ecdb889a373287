"""Train / validation / locked test assignment. Pure pandas + scikit-learn, no Django.

`assign_split` returns one int8 per row: 0 train, 1 validation, 2 test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from datasets.dates import parse_dates

TRAIN, VAL, TEST = 0, 1, 2
STRATEGIES = ("random", "stratified", "group", "time")


class SplitError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass
class SplitResult:
    assignment: np.ndarray
    counts: dict[str, int]
    warnings: list[dict] = field(default_factory=list)


def _check_sizes(test_size: float, val_size: float) -> None:
    if not 0 < test_size < 1:
        raise SplitError("Must be between 0 and 1 (exclusive).", "test_size")
    if not 0 <= val_size < 1:
        raise SplitError("Must be between 0 and 1.", "val_size")
    if test_size + val_size >= 0.9:
        raise SplitError("test_size + val_size must leave at least 10% for training.", "val_size")


def assign_split(
    frame: pd.DataFrame, *, strategy: str, test_size: float, val_size: float, seed: int, column: str | None
) -> SplitResult:
    _check_sizes(test_size, val_size)
    n = len(frame)
    if n < 10:
        raise SplitError(f"A split needs at least 10 rows; this version has {n}.", "strategy")
    if strategy not in STRATEGIES:
        raise SplitError(f"Choose one of {', '.join(STRATEGIES)}.", "strategy")
    if strategy != "random":
        if not column:
            raise SplitError(f"The {strategy} strategy needs a column.", "column")
        if column not in frame.columns:
            raise SplitError(f"No column named {column!r}.", "column")
    idx = np.arange(n)
    assignment = np.zeros(n, dtype=np.int8)
    rel_val = val_size / (1 - test_size) if val_size else 0.0

    if strategy in ("random", "stratified"):
        strat = None
        if strategy == "stratified":
            y = frame[column].astype(str).fillna("<missing>").to_numpy()
            counts = pd.Series(y).value_counts()
            if len(counts) < 2:
                raise SplitError(
                    f"{column!r} has a single class ({counts.index[0]!r}): there is nothing to stratify, or to "
                    "classify. Choose another target or collect examples of the other classes.",
                    "column",
                )
            if counts.min() < 3:
                raise SplitError(
                    f"Class {counts.idxmin()!r} of {column!r} has {counts.min()} rows; stratifying needs at least 3 "
                    "per class (use random, or merge rare classes).",
                    "column",
                )
            strat = y
        rest, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strat)
        assignment[test] = TEST
        if rel_val:
            _train, val = train_test_split(
                rest, test_size=rel_val, random_state=seed, stratify=strat[rest] if strat is not None else None
            )
            assignment[val] = VAL
    elif strategy == "group":
        groups = frame[column].astype(str).fillna("<missing>").to_numpy()
        if pd.Series(groups).nunique() < 3:
            raise SplitError("Grouping needs at least 3 distinct groups.", "column")
        try:
            gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            rest, test = next(gss.split(idx, groups=groups))
            assignment[test] = TEST
            if rel_val:
                gss = GroupShuffleSplit(n_splits=1, test_size=rel_val, random_state=seed)
                _r_train, r_val = next(gss.split(rest, groups=groups[rest]))
                assignment[rest[r_val]] = VAL
        except ValueError as exc:
            # too few groups for the requested sizes: scikit-learn leaves a part empty
            raise SplitError(f"These sizes leave a part without any group: {exc}", "test_size") from None
    else:  # time: the latest rows are the test set, the ones before validation
        times = (
            parse_dates(frame[column])  # the recognised format, as the profile and recipes read it
            if not pd.api.types.is_numeric_dtype(frame[column])
            else frame[column]
        )
        if pd.isna(times).mean() > 0.5:
            raise SplitError(f"Column {column!r} does not hold times.", "column")
        order = np.argsort(np.asarray(pd.Series(times).fillna(pd.Series(times).min())), kind="stable")
        n_test = max(1, round(n * test_size))
        n_val = round(n * val_size)
        assignment[order[n - n_test :]] = TEST
        if n_val:
            assignment[order[n - n_test - n_val : n - n_test]] = VAL

    counts = {
        "train": int((assignment == TRAIN).sum()),
        "validation": int((assignment == VAL).sum()),
        "test": int((assignment == TEST).sum()),
    }
    return SplitResult(assignment, counts, leakage_checks(frame, assignment, strategy=strategy, column=column))


def leakage_checks(frame: pd.DataFrame, assignment: np.ndarray, *, strategy: str, column: str | None) -> list[dict]:
    """Warnings about information crossing from training data into the test set."""
    warnings: list[dict] = []
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    train_hashes = set(hashes[assignment != TEST])
    dup = int(sum(1 for h in hashes[assignment == TEST] if h in train_hashes))
    if dup:
        warnings.append(
            {
                "kind": "split_duplicate_rows",
                "column": "",
                "severity": "high" if dup > 0.01 * len(frame) else "medium",
                "message": f"{dup} test rows also appear, identical, in training or validation data: the test score "
                "will be optimistic.",
                "fix": "Add a 'drop_duplicates' step to the recipe before splitting, or split by group.",
            }
        )
    if column and column in frame.columns and strategy == "group":
        g = frame[column].astype(str)
        overlap = set(g[assignment == TEST]) & set(g[assignment != TEST])
        if overlap:
            warnings.append(
                {
                    "kind": "split_group_overlap",
                    "column": column,
                    "severity": "high",
                    "message": f"{len(overlap)} groups appear in both training and test data.",
                    "fix": "Split by group.",
                }
            )
    if column and column in frame.columns and strategy == "time":
        t = frame[column]
        if len(t[assignment == TEST]) and len(t[assignment != TEST]):
            if t[assignment != TEST].max() > t[assignment == TEST].min():
                warnings.append(
                    {
                        "kind": "split_time_overlap",
                        "column": column,
                        "severity": "high",
                        "message": "Training data contains times later than the start of the test period.",
                        "fix": "Split by time.",
                    }
                )
    return warnings
