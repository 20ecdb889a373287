"""Review queue benchmark: what routing costs the predict path, how fast decisions go through
with reviewers racing, how long queue health takes on a busy deployment.

    .venv/bin/python benchmarks/reviews.py [--quick]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mlp_review_bench), created and migrated if missing.
Ratios are measured side by side in one run:
- routing: review_plan + review_items_create vs the model's own predict_proba, per batch;
- logging: Prediction INSERT with review items vs without;
- decisions: N reviewers racing over the same items (every item decided exactly once) vs one.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_review_bench")
os.environ["DATABASE_URL"] = DB_URL
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/4")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("HTTPS", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")


def ensure_database() -> None:
    import psycopg

    base, name = DB_URL.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def timed(fn, repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    from django.db import connections, transaction
    from django.utils import timezone

    from deployments.models import Deployment, Prediction, ReviewItem, ReviewMode, uuid7
    from deployments.reviews.selectors import review_health
    from deployments.reviews.services import review_decide, review_items_create, review_plan
    from mlplatform.errors import Conflict
    from projects.models import Membership, Project
    from tests.reviews.conftest import FEATURES, loan_frame, make_model_version

    User = get_user_model()
    stamp = uuid7().hex[:8]
    users = [User.objects.create(username=f"bench-{stamp}-{i}") for i in range(4)]
    project = Project.objects.create(name=f"bench {stamp}", task_type="classification", created_by=users[0])
    for i, u in enumerate(users):
        Membership.objects.create(project=project, user=u, role="owner" if i == 0 else "reviewer")

    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = loan_frame(3000, seed=1)
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), ["employment"])], remainder="passthrough"
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=50)),
        ]
    ).fit(frame[FEATURES], frame["decision"])
    mv = make_model_version(project, pipe, frame)
    deployment = Deployment.objects.create(
        project=project,
        name="loans",
        model_version=mv,
        review_threshold=0.8,
        review_mode=ReviewMode.HOLD,
        review_policy={"class_thresholds": {"reject": 0.85}, "always_review": [], "sample_rate": 0.05},
    )
    classes = [str(c) for c in pipe.classes_]
    batch = loan_frame(100, seed=5)[FEATURES]
    repeat = 20 if args.quick else 100

    # --- 1. routing vs the model itself, on a 100-instance batch -----------------------------
    proba = pipe.predict_proba(batch)
    labels = [classes[i] for i in proba.argmax(axis=1)]
    confs = [float(p.max()) for p in proba]
    t_predict = timed(lambda: pipe.predict_proba(batch), repeat)
    t_plan = timed(lambda: review_plan(deployment=deployment, labels=labels, confidences=confs), repeat)

    def rows():
        now = timezone.now()
        return [
            Prediction(
                id=uuid7(),
                project=project,
                deployment=deployment,
                model_version=mv,
                inputs=r,
                prediction=lab,
                confidence=c,
                probabilities=dict(zip(classes, map(float, p), strict=True)),
                created_at=now,
            )
            for r, lab, c, p in zip(batch.to_dict("records"), labels, confs, proba, strict=True)
        ]

    def log_plain():
        with transaction.atomic():
            Prediction.objects.bulk_create(rows())

    def log_routed():
        preds = rows()
        plan = review_plan(deployment=deployment, labels=labels, confidences=confs)
        with transaction.atomic():
            Prediction.objects.bulk_create(preds)
            review_items_create(deployment=deployment, predictions=preds, plan=plan)

    t_log = timed(log_plain, repeat)
    t_log_routed = timed(log_routed, repeat)
    routed_share = sum(1 for r in review_plan(deployment=deployment, labels=labels, confidences=confs) if r) / 100

    # --- 2. decisions: one reviewer vs four racing over the same items -----------------------
    n_items = 300 if args.quick else 1000

    def make_items(n):
        big = loan_frame(n * 4, seed=int(time.time()) % 1000)[FEATURES]
        p = pipe.predict_proba(big)
        now = timezone.now()
        preds = [
            Prediction(
                id=uuid7(),
                project=project,
                deployment=deployment,
                model_version=mv,
                inputs=r,
                prediction=classes[int(np.argmax(q))],
                confidence=float(q.max()),
                created_at=now,
            )
            for r, q in zip(big.to_dict("records")[:n], p[:n], strict=True)
        ]
        with transaction.atomic():
            Prediction.objects.bulk_create(preds)
            from deployments.reviews.routing import Route

            return review_items_create(
                deployment=deployment, predictions=preds, plan=[Route("low_confidence")] * len(preds)
            )

    items = make_items(n_items)
    t0 = time.perf_counter()
    for it in ReviewItem.objects.filter(pk__in=[i.pk for i in items]).select_related(
        "prediction__model_version", "project", "deployment"
    ):
        review_decide(item=it, actor=users[1], action="approve")
    t_one = time.perf_counter() - t0

    items = make_items(n_items)
    ids = [i.pk for i in items]
    wins = [0] * 4
    conflicts = [0] * 4
    barrier = threading.Barrier(4)

    def racer(k):
        try:
            mine = list(
                ReviewItem.objects.filter(pk__in=ids).select_related(
                    "prediction__model_version", "project", "deployment"
                )
            )
            barrier.wait()
            for it in mine:
                try:
                    review_decide(item=it, actor=users[k], action="approve")
                    wins[k] += 1
                except Conflict:
                    conflicts[k] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer, args=(k,)) for k in range(4)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_four = time.perf_counter() - t0
    decided_once = ReviewItem.objects.filter(pk__in=ids, status="approved").count()

    # --- 3. queue health on a busy deployment --------------------------------------------------
    t_health = timed(lambda: review_health(deployment=deployment), 3 if args.quick else 5)
    n_preds = Prediction.objects.filter(deployment=deployment).count()
    n_decided = ReviewItem.objects.filter(deployment=deployment).exclude(status="pending").count()

    print("Review queue benchmark (shared 2-core machine; medians)")
    print(
        f"  routing, 100-instance batch: predict_proba {t_predict * 1e3:.2f} ms, review_plan {t_plan * 1e3:.3f} ms"
        f"  -> plan / model = {t_plan / t_predict:.3f}"
    )
    print(
        f"  logging 100 predictions: plain {t_log * 1e3:.2f} ms, with review items ({routed_share:.0%} routed)"
        f" {t_log_routed * 1e3:.2f} ms  -> ratio {t_log_routed / t_log:.2f}"
    )
    print(
        f"  decisions: 1 reviewer {n_items / t_one:.0f}/s; 4 racing reviewers {n_items / t_four:.0f} decided/s"
        f" ({sum(conflicts)} conflicts, {decided_once}/{n_items} decided exactly once, wins {wins})"
        f"  -> ratio {t_one / t_four:.2f}"
    )
    print(f"  review_health: {t_health * 1e3:.0f} ms over {n_preds} predictions, {n_decided} decided items")
    assert decided_once == n_items and sum(wins) == n_items, "an item was decided twice or not at all"


if __name__ == "__main__":
    main()
