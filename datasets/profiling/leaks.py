"""Leak measures: how well one column alone predicts the target, measured so that memorising
does not count, and near-deterministic relations ("every 'no' has expenditure 0").

Every column is turned into groups (its categories; or 32 quantile bins of a number or a date;
missing values are a group of their own), and each row is predicted by the target's mean (or
class shares) in its group computed on the *other* folds (5-fold target encoding, smoothed
towards the overall mean with the weight of 3 rows). An id-like column, whose groups are seen
once, then predicts nothing: its held-out rows fall in groups unseen in training. A number also
gets its own rank measure (ROC AUC of the raw values for a binary target, r² for a numeric one),
which a monotone relation reaches without binning loss. The measures:

- classification: ROC AUC, macro one-vs-rest for more than two classes (0.5 = no signal);
- regression: R² (out of fold), with Spearman's rank correlation reported beside it.

Where the lines are, and why:
- AUC >= 0.99 alone: a column that ranks 99% of (positive, negative) pairs right on its own is
  what leaks look like (the issue's credit-card expenditure: 0.99). Ordinary strong features
  stay below: load_breast_cancer's best is 0.976 (`worst perimeter`), the best of iris' petal
  measurements about 0.97, ISLR's Default `balance` 0.95. Between those and 0.99 sits no leak
  we know of, so the line is drawn at 0.99 for a warning on its own;
- AUC >= 0.95 *and* a deterministic relation: a strong feature that also pins a class exactly
  to one value (or to missingness) on a meaningful share of rows;
- a deterministic relation alone is reported with medium severity (check how it is recorded);
- R² >= 0.90 out of fold: one column explaining nine tenths of a numeric target's variance is
  what a column derived from, or set together with, the target does (the loans' grade: 0.95 on
  the interest rate). Physical predictors rarely reach it (diabetes' bmi 0.34, Boston's lstat
  0.68).

A relation "value v <=> class c" needs purity >= 99% on at least 2% of the rows, *and* the
class's base rate must make the purity surprising: had the column been unrelated, at least 20
rows of other classes would be expected among those rows (we see at most a tenth of that), so a
pure value of a 98% majority class on 300 rows does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from datasets.dates import parse_dates
from datasets.kinds import BOOLEAN, CATEGORICAL, DATETIME, NUMERIC

from .common import as_numeric, auc_interval, rank_auc

LEAK_ROWS = 20_000
FOLDS = 5
BINS = 32
SMOOTHING = 3.0
AUC_LEAK = 0.985
AUC_WITH_RELATION = 0.95
R2_LEAK = 0.90
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
    grouped: bool  # True when the winning measure is the out-of-fold group one
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
    """(group code per row, numbers or None): quantile bins for numbers and dates, else categories."""
    x = numbers(values, kind, fmt)
    if x is None:
        codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=True)
        return np.where(codes < 0, len(uniques), codes).astype(np.int64), None
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(len(x), dtype=np.int64), x
    edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, BINS + 1)[1:-1]))
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


def measure_column(
    name: str, values: pd.Series, kind: str, target: Target, folds: np.ndarray, fmt: str = ""
) -> Measure:
    codes, x = groups(values, kind, fmt)
    oof = oof_predictions(codes, target, folds)
    n = len(codes)
    if target.task == "classification":
        grouped = _macro_auc(target.y, oof, target.k) or 0.5
        raw = _raw_auc(target.y, x, target.k) if x is not None and np.isfinite(x).any() else None
        score = max(grouped, raw or 0.0)
        return Measure(name, "roc_auc", score, _auc_ci(score, target), n, grouped=score == grouped)
    grouped = _r2(target.y, oof)
    spearman = None
    linear: tuple[float, np.ndarray] | None = None
    if x is not None:
        finite = np.isfinite(x)
        if finite.sum() >= 30 and np.std(x[finite]) > 0:
            spearman = float(pd.Series(x[finite]).corr(pd.Series(target.y[finite]), method="spearman"))
            # A straight line through the rows with a value; rows without one get the mean.
            slope, intercept = np.polyfit(x[finite], target.y[finite], 1)
            pred = np.where(finite, slope * np.where(finite, x, 0.0) + intercept, target.y[finite].mean())
            linear = (_r2(target.y, pred), pred)
    if linear is not None and linear[0] > grouped:
        return Measure(name, "r2", linear[0], (np.nan, np.nan), n, False, spearman, linear[1])
    return Measure(name, "r2", grouped, (np.nan, np.nan), n, True, spearman, oof)


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
    text = values.astype("string")
    counts = text.value_counts(dropna=True).head(RELATION_VALUES)
    min_rows = max(20, MIN_RELATION_SHARE * n)
    ends = _ends(values, text, kind)
    conditions = [
        (str(v), False, text.eq(v).fillna(False).to_numpy(dtype=bool)) for v, c in counts.items() if c >= min_rows
    ]
    missing = text.isna().to_numpy()
    if missing.sum() >= min_rows:
        conditions.append(("", True, missing))
    best: Relation | None = None
    for value, is_missing, at in conditions:
        for negated, rows in ((False, at), (True, ~at)):
            found = _pure(rows, target, min_rows)
            if found is None:
                continue
            c, purity, recall = found
            if recall < EXACT_RECALL and not is_missing and (value in ends or negated):
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


def _ends(values: pd.Series, text: pd.Series, kind: str) -> set[str]:
    """The lowest and highest value of a number column, written as `value_counts` writes them."""
    if kind != NUMERIC:
        return set()
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().sum() == 0:
        return set()
    return {str(v) for v in text[(num == num.min()) | (num == num.max())].dropna().unique()}


def _display_value(value: str, kind: str) -> str:
    if kind in (NUMERIC, BOOLEAN):
        try:
            number = float(value)
            return f"{number:g}"
        except ValueError:
            return value
    return repr(value) if kind == CATEGORICAL else value


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
