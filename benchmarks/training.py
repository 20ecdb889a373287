"""Training benchmark: the platform's trial job vs plain scikit-learn `cross_validate`, in one run.

    .venv/bin/python benchmarks/training.py            # 100,000 rows x 20 columns, RF, 5-fold CV
    .venv/bin/python benchmarks/training.py --quick    # 20,000 rows

What it does:
1. creates a fresh PostgreSQL database (BENCH_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/mlp_bench_training), migrates it, and starts one Celery
   worker subprocess (prefork, concurrency 1) on Redis (BENCH_REDIS_URL);
2. stores a generated dataset as a version, splits it, and POSTs an experiment through the API
   (Django test client, in process): random forest with fixed parameters, 5-fold stratified CV;
3. measures the random forest's trial job (started -> finished; queue wait reported apart),
   then runs the same pipeline, parameters and folds through `sklearn.model_selection.cross_validate`
   with the same metrics (train scores included) in this plain process;
4. measures enqueue-to-start latency of small trial jobs on an idle worker, and the API
   request time of the create call (it must not wait for training).
Targets: platform <= 1.05 x plain + 0.5 s; median enqueue-to-start < 20 ms; create request
returns before the training starts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _env(db_url: str, redis_url: str, data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        MLPLATFORM_DATA_DIR=data_dir,
        SECRET_KEY=secrets.token_urlsafe(40),
        DEBUG="0",
        HTTPS="0",
        STATIC_MANIFEST="0",
        ALLOWED_HOSTS="localhost,127.0.0.1,testserver",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="mlplatform.settings",
    )
    return env


def _create_database(db_url: str) -> None:
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    admin = db_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--trees", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--pool", default="prefork", help="worker pool for the platform side (prefork, solo, threads)")
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else 100_000)

    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_bench_training")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
    data_dir = tempfile.mkdtemp(prefix="mlp-bench-training-")
    env = _env(db_url, redis_url, data_dir)
    os.environ.update(env)

    print(f"Setting up: database {db_url.rsplit('/', 1)[1]}, Redis {redis_url}, data in {data_dir}")
    _create_database(db_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mlplatform", "worker", "-Q", "default,training", "-c", "1",
         "--pool", args.pool, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-n", f"bench-training-{os.getpid()}@%h"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        run(rows, args.trees, args.folds)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)


def run(rows: int, trees: int, folds: int) -> None:
    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.test import APIClient
    from sklearn.datasets import make_classification
    from sklearn.model_selection import StratifiedKFold, cross_validate

    from accounts.services import token_create
    from datasets.selectors import split_frames
    from datasets.services import dataset_create, version_create_from_frame, version_split
    from experiments import coordinator
    from experiments.ml import catalogue, training
    from experiments.models import Experiment
    from jobs.models import Job
    from jobs.runner import job_enqueue
    from mlplatform.celery import app
    from projects.models import Membership, Project

    with app.connection_for_write() as conn:
        for q in ("default", "training"):
            try:
                conn.default_channel.queue_purge(q)
            except Exception:  # noqa: S110 - an absent queue has nothing to purge
                pass

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench")  # token auth only
    project = Project.objects.create(
        name="bench", task_type="classification", objective="bench", success_metric="f1",
        success_threshold=0.8, baseline_score=0.5, created_by=user,
    )  # fmt: skip
    Membership.objects.create(project=project, user=user, role="owner")
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    frame["label"] = np.where(y == 1, "yes", "no")
    dataset = dataset_create(project=project, name="generated", created_by=user)
    version = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    version = version_split(
        version=version, actor=user, strategy="stratified", column="label", test_size=0.1, val_size=0.1
    )
    print(f"Data: {rows} rows x 20 columns; train split {version.split['counts']['train']} rows; "
          f"random forest ({trees} trees, max_depth 12), {folds}-fold stratified CV")  # fmt: skip

    params = {"n_estimators": trees, "max_depth": 12}
    space = {k: {"type": "categorical", "choices": [v]} for k, v in params.items()}
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.get("/api/v1/experiments/")  # warm-up: the first request of a process imports the URL conf
    t0 = time.perf_counter()
    resp = client.post(
        "/api/v1/experiments/",
        {"project": project.pk, "dataset_version": version.pk, "target": "label", "cv_folds": folds,
         "algorithms": ["random_forest"],
         "search": {"method": "grid", "n_trials": 1, "ensemble_k": 0, "spaces": {"random_forest": space}}},
        format="json",
    )  # fmt: skip
    create_ms = (time.perf_counter() - t0) * 1000
    assert resp.status_code == 201, resp.content
    exp_id = resp.json()["id"]
    status_at_return = resp.json()["status"]
    while Experiment.objects.get(pk=exp_id).status not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.2)
    exp = Experiment.objects.get(pk=exp_id)
    rf = exp.runs.get(algorithm="random_forest")
    assert rf.status == "succeeded", rf.error
    job = Job.objects.get(pk=rf.job_id)
    platform_s = (job.finished_at - job.started_at).total_seconds()
    wait_s = (job.started_at - job.enqueued_at).total_seconds()

    # The same pipeline, parameters and folds in this plain process.
    frames = split_frames(version)
    data = coordinator.training_data(exp, frames.train)
    algo = catalogue.get_algorithm("classification", "random_forest")
    pipe = training.build_pipeline(data.plan.preprocessor, algo.build(params))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=42)
    scoring = [
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "neg_log_loss",
    ]
    t0 = time.perf_counter()
    plain = cross_validate(pipe, data.X, data.y, cv=cv, scoring=scoring, return_train_score=True, n_jobs=1)
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain_min = cross_validate(pipe, data.X, data.y, cv=cv, n_jobs=1)
    plain_min_s = time.perf_counter() - t0
    f1_platform = rf.cv_metrics["accuracy"]["mean"]
    f1_plain = float(np.mean(plain["test_accuracy"]))

    # Enqueue-to-start latency on an idle worker: finished trials delivered again (they skip).
    latencies = []
    after_publish = []
    for _ in range(30):
        time.sleep(0.05)
        with transaction.atomic():
            j = job_enqueue(project=project, kind="experiment.trial", params={"run_id": rf.pk, "experiment_id": exp.pk})
        published = timezone.now()
        while True:
            j.refresh_from_db()
            if j.status in ("succeeded", "failed"):
                break
            time.sleep(0.005)
        latencies.append((j.started_at - j.enqueued_at).total_seconds() * 1000)
        after_publish.append((j.started_at - published).total_seconds() * 1000)
    median_ms = statistics.median(latencies)

    budget = 1.05 * plain_s + 0.5
    print()
    print(f"{'plain sklearn cross_validate':40s} {plain_s:8.2f} s   accuracy {f1_plain:.4f}")
    print(
        f"{'plain, accuracy only, no train scores':40s} {plain_min_s:8.2f} s   accuracy {np.mean(plain_min['test_score']):.4f}"
    )
    print(f"{'platform trial job (start -> finish)':40s} {platform_s:8.2f} s   accuracy {f1_platform:.4f}")
    print(f"{'ratio platform / plain':40s} {platform_s / plain_s:8.3f}     target <= 1.05 x plain + 0.5 s = {budget:.2f} s: "
          f"{'PASS' if platform_s <= budget else 'FAIL'}")  # fmt: skip
    print(f"{'queue wait (behind the 2 baselines)':40s} {wait_s:8.2f} s")
    print(f"{'enqueue-to-start, idle worker (30 jobs)':40s} median {median_ms:.1f} ms, p90 "
          f"{sorted(latencies)[int(0.9 * len(latencies))]:.1f} ms: {'PASS' if median_ms < 20 else 'FAIL'} (< 20 ms); "
          f"from commit+publish to start: median {statistics.median(after_publish):.1f} ms")  # fmt: skip
    print(
        f"{'platform / plain with only accuracy':40s} {platform_s / plain_min_s:8.3f}     (the platform computes 7 metrics on validation and training folds)"
    )
    print(f"{'POST /api/v1/experiments/':40s} {create_ms:8.1f} ms, returned with status {status_at_return!r} "
          f"(training took {(exp.finished_at - exp.created_at).total_seconds():.1f} s after it)")  # fmt: skip


if __name__ == "__main__":
    main()
