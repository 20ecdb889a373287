"""Drift-aware review routing on the simulator: errors caught per 100 reviews, confidence only vs
confidence + novelty, at the SAME review budget; and what the novelty check costs the hot path.

    .venv/bin/python benchmarks/review_routing.py [--quick]

No database: the demo's loan data, a model trained on its training split, the novelty profile
the prepare job builds (`deployments.ml.novelty.novelty_fit` on the training rows), and the
simulator's own traffic (`deployments.ml.simulation.drifted_traffic`, which
`manage.py simulate_traffic` sends through the predict service): the feature most tied to
rejection is shifted by up to 3 standard deviations over the period, and shifted rows above the
training 75th percentile get the positive label (a changed concept the model has not seen).

For each drift level, model and seed:
- confidence only: the B least confident predictions are reviewed, where B is what the demo's
  threshold (0.75) routes on that traffic;
- confidence + drift: the out_of_distribution rule at 1% (and 5%) false alarms, plus the least
  confident predictions up to the same B (the confidence threshold is lowered until the total is B).
Errors caught per 100 reviews = 100 x (reviewed predictions that were wrong) / B. Intervals:
Wilson 95% on the pooled counts; the paired difference gets a t interval across seeds.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("HTTPS", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")

from deployments.ml.novelty import wilson  # noqa: E402 - after the path and settings above

RATE = 0.01
RATES = (0.01, 0.05)
THRESHOLD = 0.75
T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 8: 2.36, 10: 2.26}


def _share(k: int, n: int) -> str:
    if not n:
        return "—"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def same_budget(conf, novel, budget: int):
    """Reviewed mask: the novel rows plus the least confident ones, `budget` rows in all."""
    import numpy as np

    order = np.argsort(conf, kind="stable")
    reviewed = np.zeros(conf.size, dtype=bool)
    if novel.sum() >= budget:
        reviewed[np.flatnonzero(novel)[:budget]] = True
        return reviewed
    reviewed |= novel
    for i in order:
        if reviewed.sum() >= budget:
            break
        reviewed[i] = True
    return reviewed


def models():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["income", "debt", "age", "employment_years", "loan_amount", "credit_history"]
    categorical = ["region", "home_ownership"]

    def prep():
        return ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="missing"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    categorical,
                ),
            ]
        )

    return numeric + categorical, {
        "logistic": lambda: Pipeline([("prep", prep()), ("model", LogisticRegression(max_iter=1000))]),
        "boosting": lambda: Pipeline([("prep", prep()), ("model", HistGradientBoostingClassifier(max_iter=100))]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np

    from demo.loop import loan_applications
    from deployments.ml.novelty import NoveltyScorer, novelty_fit
    from deployments.ml.schema import schema_infer
    from deployments.ml.simulation import drifted_traffic
    from deployments.reviews import routing

    seeds = range(3) if args.quick else range(6)
    drifts = (0.0, 0.4, 0.8) if args.quick else (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    n_traffic = 2000 if args.quick else 4000
    features, makers = models()
    data = loan_applications(n=6000, seed=7)
    print(f"# Review routing at the same budget (base confidence threshold {THRESHOLD})")
    print(f"# {len(data)} loan applications (the demo's generator); {n_traffic} simulated predictions per run\n")
    print(
        "| model | drift | reviews B | conf-only errors/100 [95% CI] "
        + "".join(f"| +drift {r:.0%}: errors/100 [95% CI] | difference [95% CI, seeds] " for r in RATES)
        + f"| novel rows routed at {RATES[0]:.0%} | their error rate | of the reviews they displaced | errors in traffic |"
    )
    print("|---|---|---|---|" + "---|---|" * len(RATES) + "---|---|---|---|")
    timing_scorer = None
    timing_frame = None
    for name, make in makers.items():
        for drift in drifts:
            base_k = reviews = total_errors = 0
            drift_k = dict.fromkeys(RATES, 0)
            diffs: dict[float, list[float]] = {r: [] for r in RATES}
            novel_n = novel_wrong = displaced_n = displaced_wrong = 0
            for seed in seeds:
                rng = np.random.default_rng(seed)
                perm = rng.permutation(len(data))
                train = data.iloc[perm[: int(0.8 * len(data))]].reset_index(drop=True)
                model = make().fit(train[features], train["approved"])
                schema = schema_infer(train[features], features)
                scorer = NoveltyScorer(novelty_fit(train[features], schema))
                traffic = drifted_traffic(
                    train=train,
                    schema=schema,
                    target="approved",
                    task_type="classification",
                    positive="approve",
                    n=n_traffic,
                    drift=drift,
                    rng=np.random.default_rng(1000 + seed),
                )
                X = traffic.rows[features]
                proba = model.predict_proba(X)
                classes = np.asarray(model.classes_)
                pred = classes[proba.argmax(axis=1)]
                conf = proba.max(axis=1)
                wrong = pred != traffic.actual.to_numpy()
                budget = int(np.sum(conf < THRESHOLD))
                base = np.zeros(len(conf), dtype=bool)
                base[np.argsort(conf, kind="stable")[:budget]] = True
                base_k += int(wrong[base].sum())
                reviews += budget
                total_errors += int(wrong.sum())
                columns = {c: X[c].to_numpy() for c in features}
                for r in RATES:
                    novel = scorer.flag(columns, r)[0]
                    with_drift = same_budget(conf, novel, budget)
                    assert with_drift.sum() == base.sum() == budget
                    drift_k[r] += int(wrong[with_drift].sum())
                    diffs[r].append(100 * (wrong[with_drift].sum() - wrong[base].sum()) / max(budget, 1))
                    if r == RATES[0]:
                        added = with_drift & ~base
                        dropped = base & ~with_drift
                        novel_n += int(added.sum())
                        novel_wrong += int(wrong[added].sum())
                        displaced_n += int(dropped.sum())
                        displaced_wrong += int(wrong[dropped].sum())
                timing_scorer, timing_frame = scorer, X
            lo, hi = wilson(base_k, reviews)
            cells = [f"{100 * base_k / reviews:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"]
            for r in RATES:
                lo, hi = wilson(drift_k[r], reviews)
                mean = statistics.mean(diffs[r])
                half = T95.get(len(diffs[r]), 2.0) * statistics.stdev(diffs[r]) / math.sqrt(len(diffs[r]))
                cells.append(f"{100 * drift_k[r] / reviews:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
                cells.append(f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]")
            print(
                f"| {name} | {drift:.1f} | {reviews / len(seeds):.0f} | "
                + " | ".join(cells)
                + f" | {novel_n / len(seeds):.0f} | {_share(novel_wrong, novel_n)}"
                + f" | {_share(displaced_wrong, displaced_n)} | {total_errors / len(seeds):.0f} |"
            )

    # --- the hot path's cost: routing.novelty_routes as review_plan calls it ----------------------
    policy = routing.ReviewPolicy(
        threshold=THRESHOLD, class_thresholds={}, always_review=frozenset(), sample_rate=0.0, novelty_rate=RATE
    )
    routing._scorers[-1] = timing_scorer  # the process cache review_plan reads (no database here)
    model = makers["logistic"]().fit(data[features], data["approved"])
    print("\n| batch | novelty check µs/call | µs/row | model predict_proba µs/call (for scale) |")
    print("|---|---|---|---|")
    for batch in (1, 10, 50, 500):
        cols = {c: timing_frame[c].to_numpy()[:batch].tolist() for c in features}
        frame = timing_frame.iloc[:batch]
        repeat = 300 if args.quick else 2000
        repeat = max(repeat // max(batch // 10, 1), 50)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            routing.novelty_routes(policy=policy, model_version_id=-1, columns=cols)
            times.append(time.perf_counter() - t0)
        model_times = []
        for _ in range(min(repeat, 200)):
            t0 = time.perf_counter()
            model.predict_proba(frame)
            model_times.append(time.perf_counter() - t0)
        per_call = statistics.median(times) * 1e6
        print(f"| {batch} | {per_call:.0f} | {per_call / batch:.1f} | {statistics.median(model_times) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
