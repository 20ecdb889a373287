"""Leak measures: how well one column alone predicts the target, measured so that memorising
does not count, and near-deterministic relations ("every 'no' has expenditure 0").

Every prediction is out of fold (5 folds), so that memorising does not count:
- categories (and a number's missing values) are groups; each row is predicted by its group's
  target mean or class shares on the *other* folds, smoothed towards the overall mean with the
  weight of 3 rows. An id-like column, whose groups are seen once, predicts nothing: its
  held-out rows fall in groups unseen in training;
- numbers and dates: each row is predicted by the targets of its nearest values in the other
  folds (1-D k-NN, k = sqrt(rows) up to 50), which finds class boundaries and bumps that fixed
  bins straddle; a table too small for that falls back to quantile bins as groups;
- numbers also get a rank measure of their raw values (ROC AUC in either direction, or the R²
  of a straight line), which a monotone relation reaches without any smoothing loss.

The measures:

- classification: ROC AUC, macro one-vs-rest for more than two classes (0.5 = no signal);
- regression: R² (out of fold), with Spearman's rank correlation reported beside it.

Where the lines are, and why:
- AUC >= 0.985 alone, with the lower end of its 95% interval >= 0.975: a column that ranks 98.5%
  of (positive, negative) pairs right on its own is what leaks look like (the issue's credit-card
  `expenditure` and `share`: 0.990 each; ISLR's Smarket `Today`, whose sign is the target: 1.0).
  Ordinary strong features stay below: load_breast_cancer's best is 0.975 (`worst perimeter`),
  the original Wisconsin biopsy's 0.974, iris' petal length 0.983 (macro one-vs-rest; setosa is
  perfectly separable, the two others are not), ISLR's Default `balance` 0.948. The interval
  keeps a small table's lucky 0.99 (iris' 150 rows give +-0.03) from being called a leak;
- AUC >= 0.95 *and* an exact relation: a strong feature that also pins a class to one value
  (or to missingness), both ways, on a meaningful share of rows;
- a relation alone is reported as a relation (medium when exact, low when partial);
- R² >= 0.90 out of fold (interval's lower end >= 0.85): one column explaining nine tenths of a
  numeric target's variance is what a column derived from, or set together with, the target
  does (the loans' grade: 0.95 on the interest rate; sub-grade: 0.99). Physical predictors
  stay well below (diabetes' bmi 0.34, Boston's lstat 0.66, ISLR Credit's limit 0.75).

A relation "value v <=> class c" needs purity >= 99% on at least 2% of the rows, *and* the
class's base rate must make the purity surprising: had the column been unrelated, at least 20
rows of other classes would be expected among those rows (we see at most a tenth of that), so a
pure value of a 98% majority class on 300 rows does not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from datasets.dates import parse_dates
from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC

from .common import as_numeric, auc_interval, rank_auc

LEAK_ROWS = 20_000
FOLDS = 5
BINS = 32
ROWS_PER_BIN = 20
SMOOTHING = 3.0
AUC_LEAK = 0.985
AUC_LEAK_LOWER = 0.975  # and the 95% interval's lower end: above the strongest ordinary features
AUC_WITH_RELATION = 0.95
R2_LEAK = 0.90
R2_LEAK_LOWER = 0.85
PURITY = 0.99
MIN_RELATION_SHARE = 0.02
MIN_EXPECTED_EXCEPTIONS = 20
RELATION_VALUES = 10  # most frequent values of a column tried as conditions
EXACT_RECALL = 0.9
SPIKE_SHARE = 0.05  # a numeric target value this frequent is studied like a class


@dataclass
class Target:
    task: str
    y: np.ndarray  # class codes 0..k-1, or floats
    classes: list[str]
    prior: np.ndarray  # class shares (classification)

    @property
    def k(self) -> int:
        return len(self.classes)


@dataclass
class Relation:
    column: str
    value: str  # the value as text, or "" for missing
    missing: bool
    negated: bool  # the relation holds for the rows *without* this value
    target_value: str
    rows: int  # rows meeting the condition
    purity: float  # share of those rows with target_value
    class_recall: float  # share of target_value's rows that meet the condition
    others_at_value: float  # negated: share of the other classes' rows that have the value

    @property
    def exact(self) -> bool:
        """Both ways: the condition holds for (almost) every row of the class, and only for it."""
        return self.class_recall >= EXACT_RECALL

    def sentence(self, target: str, other: str = "") -> str:
        """The relation in words; `other` names the other class of a two-class target."""
        what = "missing" if self.missing else f"= {self.value}"
        if self.negated:
            whom = f"{target!r} = {other!r}" if other else f"{target!r} ≠ {self.target_value!r}"
            return (
                f"{self.column!r} is {what.removeprefix('= ')} for {self.others_at_value:.0%} of the rows with {whom}, "
                f"and {self.column!r} {_negate(what)} goes with {target!r} = {self.target_value!r} in "
                f"{self.purity:.1%} of {self.rows:,} rows"
            )
        return (
            f"{self.column!r} {what} goes with {target!r} = {self.target_value!r} in "
            f"{self.purity:.1%} of {self.rows:,} rows ({self.class_recall:.0%} of that class)"
        )


def _negate(what: str) -> str:
    return "not missing" if what == "missing" else what.replace("= ", "≠ ", 1)


@dataclass
class Measure:
    column: str
    measure: str  # "roc_auc", "r2"
    score: float
    ci: tuple[float, float]
    rows: int
    method: str  # "group_means" / "neighbours" (out of fold), "raw_values", "linear"
    spearman: float | None = None
    predictions: np.ndarray | None = None  # regression: what the score was computed on (for its interval)


def make_target(values: pd.Series, task: str) -> Target | None:
    if task == "classification":
        codes, uniques = pd.factorize(values.astype(str), sort=True)
        counts = np.bincount(codes, minlength=len(uniques))
        if len(uniques) < 2 or counts.min() < 3:
            return None
        return Target(task, codes.astype(np.int64), [str(u) for u in uniques], counts / counts.sum())
    y = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    if not np.isfinite(y).all() or len(y) < 30 or np.std(y) == 0:
        return None
    return Target(task, y, [], np.array([]))


def groups(values: pd.Series, kind: str, fmt: str = "") -> tuple[np.ndarray, np.ndarray | None]:
    """(group code per row, numbers or None): categories (missing as one more), or for numbers and
    dates quantile bins (their missing values as one more group), used where k-NN cannot be."""
    x = numbers(values, kind, fmt)
    if x is None:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return np.where(codes < 0, len(uniques), codes).astype(np.int64), None
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(len(x), dtype=np.int64), x
    # About 20 rows per bin at least, so that small tables are not cut into noise.
    bins = int(np.clip(finite.sum() // ROWS_PER_BIN, 4, BINS))
    edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, bins + 1)[1:-1]))
    codes = np.searchsorted(edges, np.where(finite, x, 0.0), side="left")
    return np.where(finite, codes, len(edges) + 1).astype(np.int64), x


def numbers(values: pd.Series, kind: str, fmt: str = "") -> np.ndarray | None:
    if kind in (NUMERIC, BOOLEAN):
        num = as_numeric(values, kind)
        return None if num is None else num.to_numpy(dtype="float64")
    if kind == DATETIME:
        times = parse_dates(values, fmt or None)
        out = times.astype("int64").to_numpy().astype("float64")
        return np.where(times.isna().to_numpy(), np.nan, out)
    return None


def oof_predictions(codes: np.ndarray, target: Target, folds: np.ndarray) -> np.ndarray:
    """Each row predicted from its group's target statistics on the other folds (smoothed)."""
    n_groups = int(codes.max()) + 1
    if target.task == "classification":
        k = target.k
        total = np.bincount(codes * k + target.y, minlength=n_groups * k).reshape(n_groups, k)
        out = np.empty((len(codes), k))
        for f in range(FOLDS):
            rows = folds == f
            part = np.bincount(codes[rows] * k + target.y[rows], minlength=n_groups * k).reshape(n_groups, k)
            train = total - part
            shares = (train + SMOOTHING * target.prior) / (train.sum(axis=1, keepdims=True) + SMOOTHING)
            out[rows] = shares[codes[rows]]
        return out
    y = target.y
    sums, counts = np.bincount(codes, y, n_groups), np.bincount(codes, minlength=n_groups)
    out = np.empty(len(codes))
    for f in range(FOLDS):
        rows = folds == f
        tr_sum = sums - np.bincount(codes[rows], y[rows], n_groups)
        tr_n = counts - np.bincount(codes[rows], minlength=n_groups)
        mean = (tr_sum.sum()) / max(1, tr_n.sum())
        out[rows] = ((tr_sum + SMOOTHING * mean) / (tr_n + SMOOTHING))[codes[rows]]
    return out


MAX_CLASSES = 10  # the largest classes of a many-class target are measured (one-vs-rest each)


def _classes(y: np.ndarray, k: int) -> list[int]:
    counts = np.bincount(y, minlength=k)
    if k == 2:
        return [1]
    return [int(c) for c in np.argsort(-counts)[:MAX_CLASSES] if counts[c] >= 5]


def _macro_auc(y: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    aucs = [rank_auc(y == c, scores[:, c]) for c in _classes(y, k)]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else None


def _raw_auc(y: np.ndarray, x: np.ndarray, k: int) -> float | None:
    """AUC of the raw values, whichever direction they point (per class for several classes)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.where(np.isfinite(x), x, np.nanmin(x) - 1.0))  # one ranking for every class
    aucs = []
    for c in _classes(y, k):
        a = rank_auc(y == c, x, ranks=ranks)
        if a is not None:
            aucs.append(max(a, 1.0 - a))
    return float(np.mean(aucs)) if aucs else None


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    sst = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / sst if sst > 0 else 0.0


def neighbour_predictions(x: np.ndarray, target: Target, folds: np.ndarray) -> np.ndarray:
    """Each row with a number predicted from its nearest values in the other folds (1-D k-NN).

    It finds class boundaries and bumps wherever they are, which fixed bins straddle: three
    perfectly separated classes of 50 rows each score 1.0, not the 0.97 of 7 quantile bins. Tied
    values are centred in their run, so a spike (a block of zeros) is predicted by itself.
    """
    finite = np.isfinite(x)
    classification = target.task == "classification"
    out = np.zeros((len(x), target.k)) if classification else np.zeros(len(x))
    ordered = np.flatnonzero(finite)[np.argsort(x[finite], kind="mergesort")]  # sorted once for all folds
    onehot = np.eye(target.k)[target.y] if classification else None
    for f in range(FOLDS):
        rows = (folds == f) & finite
        train = ordered[folds[ordered] != f]
        m = len(train)
        if m == 0 or not rows.any():
            continue
        xs = x[train]
        if classification:
            counts = np.zeros((m + 1, target.k))
            np.cumsum(onehot[train], axis=0, out=counts[1:])
        else:
            counts = np.r_[0.0, np.cumsum(target.y[train])]
        k = int(np.clip(np.sqrt(m), 5, 50))
        centre = (np.searchsorted(xs, x[rows], "left") + np.searchsorted(xs, x[rows], "right")) // 2
        lo = np.clip(centre - k // 2, 0, max(0, m - k))
        hi = np.minimum(lo + k, m)
        out[rows] = (
            (counts[hi] - counts[lo]) / (hi - lo)[:, None] if classification else (counts[hi] - counts[lo]) / (hi - lo)
        )
    return out


def measure_column(
    name: str, values: pd.Series, kind: str, target: Target, folds: np.ndarray, fmt: str = ""
) -> Measure:
    codes, x = groups(values, kind, fmt)
    learned = oof_predictions(codes, target, folds)  # categories; for numbers, the rows without one
    method = "group_means"
    if x is not None and np.isfinite(x).sum() >= 30:
        near = neighbour_predictions(x, target, folds)
        has = np.isfinite(x)
        learned = np.where(has[:, None] if learned.ndim == 2 else has, near, learned)
        method = "neighbours"
    n = len(codes)
    if target.task == "classification":
        score = _macro_auc(target.y, learned, target.k) or 0.5
        raw = _raw_auc(target.y, x, target.k) if x is not None and np.isfinite(x).any() else None
        if raw is not None and raw > score:
            score, method = raw, "raw_values"
        return Measure(name, "roc_auc", score, _auc_ci(score, target), n, method)
    score, pred = _r2(target.y, learned), learned
    spearman = None
    if x is not None:
        finite = np.isfinite(x)
        if finite.sum() >= 30 and np.std(x[finite]) > 0:
            spearman = float(pd.Series(x[finite]).corr(pd.Series(target.y[finite]), method="spearman"))
            # A straight line through the rows with a value; rows without one get the mean.
            slope, intercept = np.polyfit(x[finite], target.y[finite], 1)
            line = np.where(finite, slope * np.where(finite, x, 0.0) + intercept, target.y[finite].mean())
            if _r2(target.y, line) > score:
                score, pred, method = _r2(target.y, line), line, "linear"
    return Measure(name, "r2", score, (np.nan, np.nan), n, method, spearman, pred)


def _auc_ci(auc: float, target: Target) -> tuple[float, float]:
    counts = np.bincount(target.y, minlength=target.k)
    smaller = int(np.sort(counts)[-2]) if target.k > 2 else int(counts[0])
    # Several classes: the interval of a two-class AUC with the two largest classes' sizes (rough).
    larger = int(counts.max()) if target.k > 2 else int(counts[1])
    return auc_interval(auc, smaller, larger)


def r2_interval(y: np.ndarray, pred: np.ndarray, *, seed: int = 0, rounds: int = 200) -> tuple[float, float]:
    """95% percentile-bootstrap interval of an R² over the rows (the predictions held fixed)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        values.append(_r2(y[idx], pred[idx]))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def relation(name: str, values: pd.Series, kind: str, target: Target) -> Relation | None:
    """The strongest "value (or missing) <=> one class" relation of a column, if any.

    Exact relations (the condition holds for >= 90% of the class's rows too) are kept for any
    column. Partial ones (a pure value that covers only part of its class) are kept for
    categories and missing values, and for numbers only away from the ends of their range: the
    top value of a strong ordinal score (biopsy's cell size = 10, all malignant) is pure because
    the feature is strong, not because it is recorded after the outcome.
    """
    y = target.y
    n = len(y)
    min_rows = max(20, MIN_RELATION_SHARE * n)
    # Factorised once: comparing codes is cheap, comparing a million strings (or floats as text) is not.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    frequent = [int(i) for i in np.argsort(-counts)[:RELATION_VALUES] if counts[i] >= min_rows]
    ends = _ends(values, uniques, kind)
    conditions = [(uniques[i], False, codes == i) for i in frequent]
    missing = codes < 0
    if missing.sum() >= min_rows:
        conditions.append((None, True, missing))
    best: Relation | None = None
    for value, is_missing, at in conditions:
        for negated, rows in ((False, at), (True, ~at)):
            found = _pure(rows, target, min_rows)
            if found is None:
                continue
            c, purity, recall = found
            if recall < EXACT_RECALL and not is_missing and (negated or _is_end(value, ends)):
                continue
            others = y != c
            candidate = Relation(
                column=name,
                value=_display_value(value, kind),
                missing=is_missing,
                negated=negated,
                target_value=target.classes[c],
                rows=int(rows.sum()),
                purity=purity,
                class_recall=recall,
                others_at_value=float(at[others].mean()) if others.any() else 0.0,
            )
            if best is None or (candidate.exact, candidate.rows) > (best.exact, best.rows):
                best = candidate
    return best


def _pure(rows: np.ndarray, target: Target, min_rows: float) -> tuple[int, float, float] | None:
    """(class, purity, share of the class's rows inside) when `rows` are one class beyond chance."""
    size = int(rows.sum())
    if size < min_rows:
        return None
    per_class = np.bincount(target.y[rows], minlength=target.k)
    c = int(per_class.argmax())
    exceptions = size - int(per_class[c])
    expected = size * (1.0 - target.prior[c])
    if per_class[c] / size < PURITY or expected < MIN_EXPECTED_EXCEPTIONS or exceptions > expected / 10:
        return None
    return c, float(per_class[c] / size), float(per_class[c] / max(1, (target.y == c).sum()))


def _ends(values: pd.Series, uniques: Any, kind: str) -> tuple[float, float] | None:
    """The lowest and highest value of a number column."""
    if kind != NUMERIC:
        return None
    num = pd.to_numeric(pd.Series(uniques), errors="coerce")
    return (float(num.min()), float(num.max())) if num.notna().any() else None


def _is_end(value: Any, ends: tuple[float, float] | None) -> bool:
    if ends is None:
        return False
    try:
        return float(value) in ends
    except (TypeError, ValueError):
        return False


def _display_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind in (NUMERIC, BOOLEAN):
        try:
            return f"{float(value):g}"
        except (TypeError, ValueError):
            return str(value)
    return repr(str(value)) if kind == CATEGORICAL else str(value)


def spike_target(values: pd.Series) -> Target | None:
    """A numeric target with one very frequent value (0 claims, a cap): that value as a class."""
    y = pd.to_numeric(values, errors="coerce")
    counts = y.value_counts()
    if counts.empty or counts.iloc[0] < max(30, SPIKE_SHARE * len(y)):
        return None
    spike = counts.index[0]
    codes = (y == spike).to_numpy().astype(np.int64)
    share = codes.mean()
    return Target("classification", codes, [f"≠ {spike:g}", f"{spike:g}"], np.array([1 - share, share]))
