"""Decisions by cost, measured on the simulator: the expected cost per decision of the default
threshold (0.5, no review), the F1-optimal threshold and the cost-optimal threshold + review band
(both chosen on validation rows), realized on simulated live traffic with ground truth; and how
many reviewer decisions the live re-estimate needs to pick a setting as cheap as the best one.

    .venv/bin/python benchmarks/cost_decisions.py [--quick]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mlp_cost_bench), created and migrated if missing.

One model (gradient boosting, fitted on the training split of 6,000 synthetic loan rows), the
project's cost matrix (EUR: false approval 200, false refusal 60, review 20). For each scenario
(no drift; drift 0.8) and seed, a fresh deployment runs the cost-optimal setting with a 10% QC
sample, `simulate_traffic.simulate` sends traffic through the real predict service with ground
truth for every row, and each setting's realized cost is counted on the same rows (paired; 95%
bootstrap intervals over rows). Reviewers are simulated by deciding review items with the true
label (`review_decide`, oldest first); at each checkpoint `rollout.selectors.cost_effect` gives
the live re-estimate, whose chosen setting is then priced on all the traffic.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_cost_bench")
os.environ["DATABASE_URL"] = DB_URL
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("HTTPS", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("PREDICTION_LOG_QUEUE", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")

COSTS = {"unit": "EUR", "false_positive": 200, "false_negative": 60, "review": 20}
FEATURES = ["age", "income", "score", "color", "member"]


def ensure_database() -> None:
    import psycopg

    base, name = DB_URL.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def frame(n: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 15_000, n).round(2)
    score = rng.uniform(0, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    logit = (income - 50_000) / 10_000 + 2 * (score - 0.5) + (color == "red") * 1.0
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": income,
            "score": score,
            "color": color,
            "member": rng.random(n) < 0.4,
            # Noisy labels: no threshold separates the classes, so costs and review matter.
            "approved": np.where(logit + rng.normal(0, 1.0, n) > 0.5, "yes", "no"),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ensure_database()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import numpy as np
    from django.contrib.auth import get_user_model
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from datasets.selectors import split_frames
    from datasets.services import dataset_create, version_create_from_frame, version_split
    from deployments.management.commands.simulate_traffic import simulate
    from deployments.models import Deployment, Prediction, ReviewItem
    from deployments.registry.services import model_version_prepare, model_version_register
    from deployments.reviews.services import review_decide, review_policy_update
    from deployments.rollout.selectors import cost_effect
    from deployments.rollout.services import deployment_apply_costs, deployment_create
    from experiments.ml import costs
    from experiments.ml.diagnostics import threshold_table
    from experiments.models import Experiment, Run
    from mlplatform.artifacts import model_save
    from projects.cost_matrix import cost_matrix_parse
    from projects.services import project_create, project_decide

    cm = cost_matrix_parse(COSTS)
    stamp = secrets.token_hex(4)
    owner = get_user_model().objects.create(username=f"bench-{stamp}")
    project = project_create(
        created_by=owner,
        name=f"costs {stamp}",
        task_type="classification",
        success_metric="f1",
        success_threshold=0.5,
        baseline_score=0.4,
        cost_matrix=COSTS,
    )
    project_decide(project=project, actor=owner, decision="go", rationale="benchmark")
    data = frame(6000, seed=7)
    dataset = dataset_create(project=project, name="loans", created_by=owner)
    dv = version_create_from_frame(dataset=dataset, frame=data, created_by=owner, enqueue_profile=False)
    dv = version_split(version=dv, actor=owner, strategy="random", seed=0)
    parts = split_frames(dv)
    pre = ColumnTransformer(
        [
            ("num", "passthrough", ["age", "income", "score", "member"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]),
        ]
    )
    model = HistGradientBoostingClassifier(max_iter=60, max_depth=3, random_state=0)
    pipe = Pipeline([("pre", pre), ("model", model)]).fit(parts.train[FEATURES], parts.train["approved"])
    yes = list(pipe.classes_).index("yes")
    p_val = pipe.predict_proba(parts.val[FEATURES])[:, yes]
    y_val = parts.val["approved"].to_numpy() == "yes"
    stored = model_save(pipe, prefix=f"projects/{project.pk}/models")
    exp = Experiment.objects.create(
        project=project,
        name="costs",
        dataset_version=dv,
        target="approved",
        task_type="classification",
        metric="f1",
        created_by=owner,
    )
    run = Run.objects.create(
        project=project,
        experiment=exp,
        algorithm="hist_gradient_boosting",
        params={},
        status="succeeded",
        cv_metrics={"f1": {"mean": 0.8, "std": 0.02}},
        score=0.8,
        final_artifact_key=stored.key,
        final_artifact_sha256=stored.sha256,
        diagnostics={
            "n_val": len(y_val),
            "positive_class": "yes",
            "thresholds": threshold_table(y_val, p_val),
            "score_hist": costs.hist_to_json(costs.score_hist(p_val, y_val)),
        },
    )
    exp.evaluated_run = run
    exp.test_evaluation = {
        "metric": "f1",
        "metrics": {"f1": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85}},
        "feature_columns": FEATURES,
        "classes": ["no", "yes"],
        "positive_class": "yes",
        "n_test": 600,
        "verdict": "beats the baseline",
    }
    exp.save()
    version = model_version_prepare(version=model_version_register(run=run, actor=owner), features=FEATURES)
    validation = costs.cost_analysis(costs.score_hist(p_val, y_val), cm, current=(0.5, 0.5, 0.5))
    best = validation["best"]
    settings_ = {
        "default 0.5": (0.5, 0.5, 0.5),
        f"F1-optimal {validation['f1_optimal']['threshold']:.2f}": (validation["f1_optimal"]["threshold"],) * 3,
        "cost-optimal (validation)": (best["threshold"], *(best["band"] or (best["threshold"],) * 2)),
    }
    print(f"validation rows: {len(y_val)}; cost matrix {COSTS}")
    print(
        f"validation: default {validation['default']['cost']:.2f}, F1-optimal "
        f"{validation['f1_optimal']['cost']:.2f}, cost-optimal t={best['threshold']} band={best['band']} "
        f"{best['cost']:.2f} [{best['cost_ci'][0]:.2f}, {best['cost_ci'][1]:.2f}] EUR per decision"
    )

    def row_costs(p, y, setting):
        _, low, high = setting
        reviewed = (p >= low) & (p < high)
        pos = p >= high
        c = np.where(pos & ~y, cm.false_positive, 0.0) + np.where(~pos & ~reviewed & y, cm.false_negative, 0.0)
        return np.where(reviewed, cm.review, c)

    def ci(values, rng, n_boot=1000):
        means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_boot)]
        return values.mean(), *np.percentile(means, [2.5, 97.5])

    n = 1500 if args.quick else 3000
    seeds = [1, 2] if args.quick else [1, 2, 3]
    checkpoints = [25, 50, 100, 200, 400, 800]
    for drift in (0.0, 0.8):
        print(f"\n## drift {drift}: {n} predictions per seed, seeds {seeds}")
        pooled = {k: [] for k in [*settings_, "oracle (best on the realized traffic)"]}
        convergence = []
        validation_cost = {}
        for seed in seeds:
            d = deployment_create(project=project, actor=owner, name=f"d{drift}-{seed}-{stamp}", model_version=version)
            t, low, high = settings_["cost-optimal (validation)"]
            deployment_apply_costs(deployment=d, actor=owner, threshold=t, band=[low, high], reason="benchmark")
            d = Deployment.objects.get(pk=d.pk)
            review_policy_update(
                deployment=d, actor=owner, review_policy={**d.review_policy, "sample_rate": 0.1}, review_mode="flag"
            )
            d = Deployment.objects.select_related("model_version", "project").get(pk=d.pk)
            simulate(deployment=d, n=n, drift=drift, hours=24, feedback_delay_minutes=0, label_rate=1.0, seed=seed)
            rows = list(Prediction.objects.filter(deployment=d).order_by("id").values_list("probabilities", "actual"))
            p = np.array([r[0]["yes"] for r in rows])
            y = np.array([r[1] == "yes" for r in rows])
            realized = costs.cost_analysis(costs.score_hist(p, y), cm, n_boot=0)
            o = realized["best"]
            oracle = (o["threshold"], *(o["band"] or (o["threshold"],) * 2))
            for name, setting in [*settings_.items(), ("oracle (best on the realized traffic)", oracle)]:
                pooled[name].append(row_costs(p, y, setting))
            # The live re-estimate from reviewer decisions, oldest first.
            items = list(ReviewItem.objects.filter(deployment=d).select_related("prediction").order_by("created_at"))
            decided = 0
            oracle_cost = row_costs(p, y, oracle).mean()
            validation_cost[seed] = (row_costs(p, y, settings_["cost-optimal (validation)"]).mean(), oracle_cost)
            for k in [c for c in checkpoints if c <= len(items)] + [len(items)]:
                for item in items[decided:k]:
                    review_decide(item=item, actor=owner, action="override", label=item.prediction.actual)
                decided = k
                live = cost_effect(Deployment.objects.select_related("model_version", "project").get(pk=d.pk))["live"]
                if not live.get("available"):
                    convergence.append((seed, k, None, None))
                    continue
                if k == len(items):
                    print(f"  seed {seed}: {live['decided']} reviewer decisions, {live['sample']} from the QC sample")
                b = live["analysis"]["best"]
                chosen = (b["threshold"], *(b["band"] or (b["threshold"],) * 2))
                convergence.append((seed, k, row_costs(p, y, chosen).mean(), oracle_cost))
        rng = np.random.default_rng(0)
        print("| setting | realized EUR per decision | 95% CI |")
        print("|---|---|---|")
        for name, parts_ in pooled.items():
            mean, lo, hi = ci(np.concatenate(parts_), rng)
            print(f"| {name} | {mean:.2f} | {lo:.2f} to {hi:.2f} |")
        print(
            "\nlive re-estimate (reviewer decisions -> realized EUR per decision of its choice; "
            "per seed: validation choice / oracle = "
            + ", ".join(f"s{s}: {validation_cost[s][0]:.2f}/{validation_cost[s][1]:.2f}" for s in seeds)
            + "):"
        )
        for k in sorted({c[1] for c in convergence}):
            cells = [f"s{s}: {'n/a' if c is None else f'{c:.2f}/{oc:.2f}'}" for s, kk, c, oc in convergence if kk == k]
            print(f"  {k:>5}: " + ", ".join(cells))
        within = {}
        for s in seeds:
            mine = [(kk, c, oc) for ss, kk, c, oc in convergence if ss == s]
            # The first checkpoint from which every later choice stays within 5% of the oracle.
            ok = [
                kk
                for i, (kk, _, _) in enumerate(mine)
                if all(c is not None and c <= oc * 1.05 for _, c, oc in mine[i:])
            ]
            within[s] = min(ok) if ok else None
        print(f"decisions from which the live choice stays within 5% of the oracle, per seed: {within}")


if __name__ == "__main__":
    main()
