"""PR AUC as average precision: the metric the imbalance warning recommends. No Django here.

Average precision is the area under the precision-recall curve computed as a step function
(scikit-learn's `average_precision_score`, no interpolation): the precision at each distinct
score, weighted by the recall it adds. With a rare positive class it moves where ROC AUC barely
does, which is why the profile advises it. The binary positive class is the label index given
(as for precision, recall, F1 and ROC AUC); several classes give the macro average of one-vs-rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def average_precision(positive: np.ndarray, score: np.ndarray) -> float | None:
    """AP of one class; None when the rows hold no positive (or only positives: nothing to rank)."""
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        return None
    order = np.argsort(-score, kind="mergesort")
    ranked_score, ranked_pos = score[order], positive[order]
    # One point of the curve per distinct score: tied rows enter together.
    last_of_tie = np.r_[np.flatnonzero(np.diff(ranked_score)), len(ranked_score) - 1]
    tps = np.cumsum(ranked_pos)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pr_auc(y: np.ndarray, proba: np.ndarray, k: int, *, positive: int = 1) -> float | None:
    """PR AUC from label indices 0..k-1 and class probabilities (macro one-vs-rest above two classes)."""
    if k == 2:
        return average_precision(y == positive, proba[:, positive])
    values = [average_precision(y == c, proba[:, c]) for c in range(k)]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def pr_auc_scorer(estimator: Any, X: Any, y: Any) -> float:
    """A scikit-learn scorer (learning curves, permutation importance) with the same definition."""
    classes = list(estimator.classes_)
    index = {c: i for i, c in enumerate(classes)}
    y_idx = np.array([index.get(v, -1) for v in np.asarray(y)])
    value = pr_auc(y_idx, estimator.predict_proba(X), len(classes))
    return float("nan") if value is None else value
