"""How unlike its training data a serving row is: a novelty score, calibrated (no Django).

A model can be confidently wrong on inputs unlike anything it was trained on. `novelty_fit`
builds, from the training rows of a model version (the registry's prepare job), a small JSON
profile; `NoveltyScorer` scores request rows against it, vectorised over rows and features.

The score of a row is its negative log-density under a per-feature model of the training data
(features taken as independent, in nats; larger = more novel), summed over features:
- numeric: an equal-frequency histogram between the training 0.5% and 99.5% quantiles (16 bins,
  density in robust units: scale = IQR / 1.349), and exponential tails beyond them that lose one
  nat per robust unit; a value far above everything seen scores in proportion to how far;
- categorical and boolean: -log(share in training); a category never seen in training scores
  as rarer than the rarest seen one, plus a penalty of 3 nats;
- missing: -log(missing rate in training), floored at half a row.

The cut-off is not a constant: the training rows are split into fit (the rest), calibration and
check sets (up to 2,000 rows each). For a false-alarm rate `rate` chosen by the user, the
cut-off is the split-conformal quantile of the calibration scores, so an in-distribution row is
flagged with probability at most `rate` (and at least `rate - 1/(n+1)`); the check rows, used
for nothing else, give the measured false-alarm rate with its Wilson interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from experiments.ml.metrics import wilson_interval

NOVELTY_FORMAT = 1
INNER_BINS = 16
TAIL = 0.005  # the histogram covers the training [0.5%, 99.5%] range
UNSEEN_PENALTY = 3.0  # nats beyond the rarest category seen in training
MAX_HELDOUT = 2000  # calibration rows, and as many check rows
MIN_ROWS = 100  # fewer training rows: no profile (the rule is then off for the version)
RATE_MIN, RATE_MAX = 0.001, 0.2
KEEP_TAIL = 0.3  # share of the calibration / check scores kept (the largest), enough for RATE_MAX
MAX_COPULA = 60  # numeric features; more: the marginals only
SHRINK = 0.05
NUMERIC = {"numeric"}
CATEGORICAL = {"categorical", "boolean"}


def category_key(value: Any) -> str:
    """One text form per category (the drift reference's: 1.0 and 1 are the same category)."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value)


def _as_float(values: Any) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)


# --- fitting -------------------------------------------------------------------------------------


def _numeric_fit(name: str, column: Any, all_values: Any) -> dict[str, Any]:
    x = _as_float(column)
    n_total = x.size
    v = x[np.isfinite(x)]
    floor = 0.5 / max(n_total, 1)
    missing = max(1 - v.size / n_total, floor) if n_total else 1.0
    if v.size == 0:
        return {"name": name, "type": "numeric", "empty": True, "missing_nll": -math.log(missing)}
    lo, q25, median, q75, hi = np.quantile(v, [TAIL, 0.25, 0.5, 0.75, 1 - TAIL])
    scale = (q75 - q25) / 1.349
    if not scale > 0:
        scale = (hi - lo) / 5.15
    if not scale > 0:
        scale = max(abs(float(median)) * 0.01, 1e-6)
    edges = np.unique(np.quantile(v, np.linspace(TAIL, 1 - TAIL, INNER_BINS + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    # Rows per bin [e_i, e_i+1), the last bin closed.
    pos = np.searchsorted(edges, v, side="right") - 1
    inside = (v >= edges[0]) & (v <= edges[-1])
    counts = np.bincount(np.clip(pos[inside], 0, edges.size - 2), minlength=edges.size - 1)
    widths = np.maximum(np.diff(edges), scale * 0.05)
    mass = np.maximum(counts / v.size, floor)
    inner = -np.log(mass / widths * scale)
    low_share = float(np.mean(v < edges[0]))
    low_mass = max(low_share, floor)
    high_mass = max(float(np.mean(v > edges[-1])), floor)
    cdf = low_share + np.concatenate([[0.0], np.cumsum(counts) / v.size])
    everything = _as_float(all_values)
    everything = everything[np.isfinite(everything)]
    return {
        "name": name,
        "type": "numeric",
        "edges": [float(e) for e in edges],
        "inner_nll": [round(float(a), 5) for a in inner],
        "cdf": [round(float(c), 6) for c in cdf],
        "low_nll": -math.log(low_mass),
        "high_nll": -math.log(high_mass),
        "scale": float(scale),
        "missing_nll": -math.log(missing),
        "missing_rate": round(1 - v.size / n_total, 6),
        "min": float(everything.min()) if everything.size else float(v.min()),
        "max": float(everything.max()) if everything.size else float(v.max()),
    }


def _categorical_fit(name: str, column: Any) -> dict[str, Any]:
    values = list(column)
    n_total = len(values)
    counts: dict[str, int] = {}
    for value in values:
        if not _missing(value):
            key = category_key(value)
            counts[key] = counts.get(key, 0) + 1
    present = sum(counts.values())
    floor = 0.5 / max(n_total, 1)
    missing = max(1 - present / n_total, floor) if n_total else 1.0
    return {
        "name": name,
        "type": "categorical",
        "nll": {k: round(-math.log(c / present), 5) for k, c in sorted(counts.items())},
        "shares": {k: round(c / present, 6) for k, c in sorted(counts.items())},
        "unseen_nll": -math.log(0.5 / max(present, 1)) + UNSEEN_PENALTY,
        "missing_nll": -math.log(missing),
        "missing_rate": round(1 - present / n_total, 6) if n_total else 1.0,
    }


def _columns(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    return {n: frame[n].to_numpy() for n in names}


def novelty_fit(frame: pd.DataFrame, input_schema: list[dict[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """The novelty profile (JSON-safe) of these training rows; see the module docstring."""
    used = [s for s in input_schema if s.get("type") in NUMERIC | CATEGORICAL and s.get("name") in frame.columns]
    n = len(frame)
    if n < MIN_ROWS or not used:
        reason = f"fewer than {MIN_ROWS} training rows" if n < MIN_ROWS else "no numeric or categorical feature"
        return {"format": NOVELTY_FORMAT, "status": "skipped", "reason": reason}
    order = np.random.default_rng(seed).permutation(n)
    held = min(MAX_HELDOUT, n // 5)
    cal_rows, check_rows, fit_rows = order[:held], order[held : 2 * held], order[2 * held :]
    fit = frame.iloc[fit_rows]
    features = []
    for spec in used:
        name = spec["name"]
        if spec["type"] in NUMERIC:
            features.append(_numeric_fit(name, fit[name].to_numpy(), frame[name].to_numpy()))
        else:
            features.append(_categorical_fit(name, fit[name].to_numpy()))
    profile: dict[str, Any] = {
        "format": NOVELTY_FORMAT,
        "status": "ready",
        "features": features,
        "n_fit": int(fit_rows.size),
    }
    profile["copula"] = _copula_fit(NoveltyScorer(profile), fit, seed)
    scorer = NoveltyScorer(profile)
    names = [f["name"] for f in features]
    cal_parts = scorer.parts(_columns(frame.iloc[cal_rows], names))
    cal = cal_parts.sum(axis=1)
    check = scorer.parts(_columns(frame.iloc[check_rows], names)).sum(axis=1)
    keep = math.ceil(KEEP_TAIL * held) + 1
    profile["calibration"] = {
        "n": int(held),
        "top": [round(float(s), 5) for s in np.sort(cal)[::-1][:keep]],
        # Each feature's median part on in-distribution rows, by name: what "unremarkable" scores.
        "typical": {n: round(float(m), 5) for n, m in zip(scorer.names, np.median(cal_parts, axis=0), strict=True)},
    }
    profile["check"] = {"n": int(held), "top": [round(float(s), 5) for s in np.sort(check)[::-1][:keep]]}
    return profile


def _copula_fit(scorer: NoveltyScorer, fit: pd.DataFrame, seed: int) -> dict[str, Any] | None:
    """The numeric features' dependence: a Gaussian copula on their normal scores.

    The marginals alone miss a row whose values are each common but never seen together (a debt
    shifted up at an unchanged income); the copula's log-density, -0.5 z'(R^-1 - I)z on the
    normal scores z = Phi^-1(F(x)), adds exactly that. R is shrunk a little towards I.
    """
    k = len(scorer.numeric)
    if k < 2 or k > MAX_COPULA:
        return None
    rows = fit if len(fit) <= 20_000 else fit.sample(20_000, random_state=seed)
    X = scorer.numeric_matrix({f["name"]: rows[f["name"]].to_numpy() for f in scorer.numeric})
    z = scorer.normal_scores(X)
    R = np.corrcoef(z, rowvar=False)
    if not np.all(np.isfinite(R)):
        return None
    R = (1 - SHRINK) * R + SHRINK * np.eye(k)
    A = np.linalg.inv(R) - np.eye(k)
    return {"features": [f["name"] for f in scorer.numeric], "A": [[round(float(a), 6) for a in r] for r in A]}


# --- scoring -------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's interval for k of n (experiments.ml.metrics.wilson_interval)."""
    return wilson_interval(k / n if n > 0 else 0.0, n, z)


def _fmt(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


class NoveltyScorer:
    """Scores rows against a profile; build once per model version and process (cheap to keep)."""

    def __init__(self, profile: dict[str, Any]):
        self.profile = profile
        self.features = [f for f in profile.get("features") or [] if not f.get("empty")]
        self.empty = [f for f in profile.get("features") or [] if f.get("empty")]
        self.numeric = [f for f in self.features if f["type"] == "numeric"]
        self.categorical = [f for f in self.features if f["type"] == "categorical"]
        self.names = [f["name"] for f in self.numeric] + [f["name"] for f in self.categorical]
        width = max((len(f["edges"]) for f in self.numeric), default=2)
        k = len(self.numeric)
        # Edges padded with +inf (no value passes them), so one comparison finds every bin.
        self._edges = np.full((k, width), np.inf)
        self._inner = np.zeros((k, width - 1))
        self._cdf = np.ones((k, width))
        self._inv_width = np.zeros((k, width - 1))
        for j, f in enumerate(self.numeric):
            e = np.asarray(f["edges"], dtype=float)
            self._edges[j, : e.size] = e
            self._inner[j, : e.size - 1] = f["inner_nll"]
            self._cdf[j, : e.size] = f.get("cdf") or np.linspace(TAIL, 1 - TAIL, e.size)
            w = np.diff(e)
            self._inv_width[j, : e.size - 1] = np.divide(1.0, w, out=np.zeros_like(w), where=w > 0)
        self._lo = np.array([f["edges"][0] for f in self.numeric], dtype=float)
        self._hi = np.array([f["edges"][-1] for f in self.numeric], dtype=float)
        self._rows = np.arange(k)[None, :]
        self._bins = np.array([len(f["edges"]) - 1 for f in self.numeric], dtype=np.intp)
        self._low_nll = np.array([f["low_nll"] for f in self.numeric], dtype=float)
        self._high_nll = np.array([f["high_nll"] for f in self.numeric], dtype=float)
        self._scale = np.array([f["scale"] for f in self.numeric], dtype=float)
        self._num_missing = np.array([f["missing_nll"] for f in self.numeric], dtype=float)
        self._low_share = np.exp(-self._low_nll)
        self._high_share = np.exp(-self._high_nll)
        self._tables = [f["nll"] for f in self.categorical]
        copula = profile.get("copula") or {}
        numeric_names = [f["name"] for f in self.numeric]
        self._A = None
        if copula.get("features") == numeric_names and numeric_names:
            self._A = np.asarray(copula["A"], dtype=float)
        cal = profile.get("calibration") or {}
        self.n_cal = int(cal.get("n") or 0)
        self._cal_top = np.asarray(cal.get("top") or [], dtype=float)
        typical = cal.get("typical") if isinstance(cal.get("typical"), dict) else {}
        self._typical = np.array([typical.get(n, 0.0) for n in self.names], dtype=float)
        check = profile.get("check") or {}
        self.n_check = int(check.get("n") or 0)
        self._check_top = np.asarray(check.get("top") or [], dtype=float)

    @property
    def ready(self) -> bool:
        return self.profile.get("status") == "ready" and bool(self.names) and self.n_cal > 0

    def parts(self, columns: dict[str, Any]) -> np.ndarray:
        """Per-row, per-feature negative log-density (n_rows x features, in `self.names` order)."""
        n = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((n, len(self.names)))
        k = len(self.numeric)
        if k:
            marginal, joint = self._numeric_parts(self.numeric_matrix(columns))
            out[:, :k] = marginal + joint
        for j, (f, table) in enumerate(zip(self.categorical, self._tables, strict=True)):
            unseen, missing = f["unseen_nll"], f["missing_nll"]
            values = columns[f["name"]]
            out[:, k + j] = [
                missing if _missing(v) else table.get(v if type(v) is str else category_key(v), unseen) for v in values
            ]
        return out

    def numeric_matrix(self, columns: dict[str, Any]) -> np.ndarray:
        X = np.empty((len(columns[self.numeric[0]["name"]]), len(self.numeric)))
        for j, f in enumerate(self.numeric):
            X[:, j] = _as_float(columns[f["name"]])
        return X

    def _bins_of(self, X: np.ndarray) -> np.ndarray:
        # One comparison against the padded edges finds every bin (np.clip is slow on small arrays).
        bins = (X[:, :, None] >= self._edges[None, :, :]).sum(axis=2) - 1
        np.minimum(bins, self._bins - 1, out=bins)
        return np.maximum(bins, 0, out=bins)

    def normal_scores(self, X: np.ndarray, bins: np.ndarray | None = None) -> np.ndarray:
        """Phi^-1 of each value's training CDF (histogram inside, exponential tails); 0 when missing."""
        bins = self._bins_of(X) if bins is None else bins
        with np.errstate(invalid="ignore", over="ignore"):
            return self._normal_scores(X, bins)

    def _normal_scores(self, X: np.ndarray, bins: np.ndarray) -> np.ndarray:
        c0 = self._cdf[self._rows, bins]
        frac = (X - self._edges[self._rows, bins]) * self._inv_width[self._rows, bins]
        F = c0 + (self._cdf[self._rows, bins + 1] - c0) * np.minimum(np.maximum(frac, 0.0), 1.0)
        F = np.where(X < self._lo, self._low_share * np.exp((X - self._lo) / self._scale), F)
        F = np.where(X > self._hi, 1 - self._high_share * np.exp((self._hi - X) / self._scale), F)
        z = ndtri(np.minimum(np.maximum(F, 1e-6), 1 - 1e-6))
        z[np.isnan(X)] = 0.0
        return z

    def _numeric_parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(marginal nll, the copula's share per feature), each n_rows x numeric features."""
        bins = self._bins_of(X)
        with np.errstate(invalid="ignore", over="ignore"):
            marginal = self._inner[self._rows, bins]
            marginal = np.where(X < self._lo, self._low_nll + (self._lo - X) / self._scale, marginal)
            marginal = np.where(X > self._hi, self._high_nll + (X - self._hi) / self._scale, marginal)
            missing = np.isnan(X)
            marginal[missing] = self._num_missing[np.nonzero(missing)[1]]
            if self._A is None:
                return marginal, np.zeros_like(marginal)
            z = self._normal_scores(X, bins)
        return marginal, 0.5 * z * (z @ self._A)

    def scores(self, columns: dict[str, Any]) -> np.ndarray:
        return self.parts(columns).sum(axis=1)

    def cutoff(self, rate: float) -> float:
        """Split-conformal cut-off: an in-distribution row scores above it with probability <= rate."""
        n = self.n_cal
        rank = math.ceil((1 - rate) * (n + 1))  # the rank-th smallest calibration score
        if rank > n:
            return math.inf  # too few calibration rows for so small a rate: nothing is flagged
        index = n - rank  # in the descending top list
        if index >= self._cal_top.size:
            index = self._cal_top.size - 1
        return float(self._cal_top[index])

    def false_alarm(self, rate: float) -> dict[str, Any]:
        """Measured on the check rows (never used to fit or calibrate): share flagged, Wilson 95%."""
        c = self.cutoff(rate)
        k = int(np.sum(self._check_top > c))
        low, high = wilson(k, self.n_check)
        return {
            "rate": rate,
            "cutoff": None if math.isinf(c) else round(c, 4),
            "check_rows": self.n_check,
            "check_flagged": k,
            "measured": round(k / self.n_check, 4) if self.n_check else None,
            "ci_low": round(low, 4),
            "ci_high": round(high, 4),
        }

    def flag(self, columns: dict[str, Any], rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(novel mask, scores, parts) of these rows at false-alarm rate `rate`."""
        parts = self.parts(columns)
        scores = parts.sum(axis=1)
        return scores > self.cutoff(rate), scores, parts

    def explain(self, columns: dict[str, Any], row: int, parts_row: np.ndarray, limit: int = 3) -> list[dict[str, Any]]:
        """The features that made one row novel, most telling first, each with a sentence."""
        excess = parts_row - self._typical
        by_name = {f["name"]: f for f in self.features}
        k = len(self.numeric)
        joint = np.zeros(k)
        partners: list[int] = [0] * k
        if k and self._A is not None:
            X = self.numeric_matrix({f["name"]: [columns[f["name"]][row]] for f in self.numeric})
            _, joint_parts = self._numeric_parts(X)
            joint = joint_parts[0]
            z = self.normal_scores(X)[0]
            pair = self._A * np.outer(z, z)
            np.fill_diagonal(pair, -np.inf)
            partners = [int(np.argmax(pair[j])) for j in range(k)]
        found: list[tuple[int, float, dict[str, Any]]] = []
        for j, name in enumerate(self.names):
            f = by_name[name]
            value = columns[name][row]
            value = value.item() if hasattr(value, "item") else value
            reason = _reason(f, value, float(excess[j]))
            if reason is not None and reason[2] == "sparse" and j < k and joint[j] > excess[j] / 2:
                other = self.numeric[partners[j]]["name"]
                other_value = columns[other][row]
                other_value = other_value.item() if hasattr(other_value, "item") else other_value
                shown = _fmt(float(other_value)) if isinstance(other_value, int | float) else "missing"
                reason = (
                    2,
                    f"{name} {_fmt(float(value))} is unusual together with {other} {shown} "
                    "(training rows rarely combine them)",
                    "unusual_combination",
                )
            if reason is not None:
                priority, text, kind = reason
                found.append(
                    (priority, float(excess[j]), {"feature": name, "value": value, "kind": kind, "text": text})
                )
        found.sort(key=lambda t: (t[0], -t[1]))
        out = []
        for _, ex, entry in found[:limit]:
            entry["excess"] = round(ex, 2)
            if isinstance(entry["value"], float) and not math.isfinite(entry["value"]):
                entry["value"] = None
            out.append(entry)
        return out


def _reason(f: dict[str, Any], value: Any, excess: float) -> tuple[int, str, str] | None:
    """(priority, sentence, kind) for one feature of a novel row; None when it is unremarkable."""
    name = f["name"]
    if _missing(value) or (f["type"] == "numeric" and not isinstance(value, int | float)):
        rate = f.get("missing_rate", 0)
        if rate < 0.01:
            seen = f"missing in {rate:.1%} of training rows" if rate else "never missing in training"
            return (1, f"{name} is missing ({seen})", "missing")
        return None
    if f["type"] == "numeric":
        x = float(value)
        if x > f["max"]:
            return (0, f"{name} {_fmt(x)} is above everything seen in training (max {_fmt(f['max'])})", "above_range")
        if x < f["min"]:
            return (0, f"{name} {_fmt(x)} is below everything seen in training (min {_fmt(f['min'])})", "below_range")
        if x > f["edges"][-1]:
            return (1, f"{name} {_fmt(x)} is above 99.5% of training values", "tail")
        if x < f["edges"][0]:
            return (1, f"{name} {_fmt(x)} is below 99.5% of training values", "tail")
        if excess > 1.0:
            ratio = math.exp(excess)
            return (2, f"{name} {_fmt(x)} lies where training data is sparse ({ratio:.0f}× below typical)", "sparse")
        return None
    key = value if isinstance(value, str) else category_key(value)
    share = (f.get("shares") or {}).get(key)
    if share is None:
        return (0, f"{name} {key!r} never seen in training", "unseen_category")
    if share < 0.01:
        return (1, f"{name} {key!r} is rare in training ({share:.1%} of rows)", "rare_category")
    return None
