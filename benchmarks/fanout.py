"""Trial fan-out: the same experiment's wall time with 1, 2 and 4 Celery worker processes.

    .venv/bin/python benchmarks/fanout.py            # 8,000 rows x 20 columns, 8 RF trials, 5-fold CV
    .venv/bin/python benchmarks/fanout.py --quick    # 3,000 rows, 6 trials
    .venv/bin/python benchmarks/fanout.py --workers 1,2,4,8
    .venv/bin/python benchmarks/fanout.py --s3         # files in a local moto S3 server's bucket

What it does: creates a fresh PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mlp_bench_fanout), stores a generated dataset as a version
and splits it; then for each worker count starts that many `celery worker -c 1` processes
(each its own data directory; files on one shared disk, or with --s3 in a bucket: what
separate machines would use), POSTs the same experiment
(random forest, the same fixed trial parameters, baselines, no ensemble) and measures the
wall time from the create request to the experiment's end, three times per count unless
--repeats says otherwise. Speed-up = median wall time with 1 worker / median with N. Each
worker is one process with one core's worth of work (n_jobs=1): on a machine with C cores
the speed-up cannot pass about C, and a shared machine's other load shows as spread.
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
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _create_database(db_url: str) -> None:
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    admin = db_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _die_with_parent() -> None:
    """In each worker: its own process group, and SIGKILL when this script dies."""
    import ctypes

    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def _start_workers(n: int, env: dict[str, str], base: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        data = base / f"worker-{n}-{i}"
        data.mkdir(parents=True, exist_ok=True)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "mlplatform", "worker", "-Q", "default,training", "-c", "1",
                 "--pool", "prefork", "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-n", f"bench-fanout-{n}-{i}-{os.getpid()}@%h"],
                cwd=ROOT, env={**env, "MLPLATFORM_DATA_DIR": str(data)}, preexec_fn=_die_with_parent,
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, 15)
        except ProcessLookupError:
            pass
    for p in procs:
        p.wait(timeout=60)


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the workers are stopped on the way out
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--trees", type=int, default=60)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--s3", action="store_true", help="files in a bucket of a local moto S3 server")
    args = parser.parse_args()
    rows = args.rows or (3_000 if args.quick else 8_000)
    trials = args.trials or (6 if args.quick else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    counts = [int(x) for x in args.workers.split(",")]

    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_bench_fanout")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
    data_dir = tempfile.mkdtemp(prefix="mlp-bench-fanout-")
    env = _env(db_url, redis_url, data_dir)
    moto = None
    if args.s3:  # what separate machines need: the workers' data directories stay empty
        from tests.objectstore import MotoServer

        moto = MotoServer()
        env.update(moto.env(moto.create_bucket()))
    else:  # one disk for the files, as on one machine
        env["MEDIA_ROOT"] = str(Path(data_dir) / "media")
    os.environ.update(env)
    print(f"Setting up: database {db_url.rsplit('/', 1)[1]}, Redis {redis_url}, data in {data_dir}")
    _create_database(db_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient
    from sklearn.datasets import make_classification

    from accounts.services import token_create
    from datasets.services import dataset_create, version_create_from_frame, version_split
    from experiments.models import Experiment
    from jobs.models import Job
    from mlplatform.celery import app
    from projects.models import Membership, Project

    user = get_user_model().objects.create_user("bench")
    project = Project.objects.create(
        name="fanout", task_type="classification", objective="bench", success_metric="roc_auc",
        success_threshold=0.8, baseline_score=0.5, created_by=user,
    )  # fmt: skip
    Membership.objects.create(project=project, user=user, role="owner")
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    frame["label"] = np.where(y == 1, "yes", "no")
    dataset = dataset_create(project=project, name="generated", created_by=user)
    version = version_create_from_frame(dataset=dataset, frame=frame, created_by=user, enqueue_profile=False)
    version = version_split(version=version, actor=user, strategy="stratified", column="label")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)[1]}")
    # The same trial parameters every time (grid over fixed depths), so every run does equal work.
    space = {
        "n_estimators": {"type": "categorical", "choices": [args.trees]},
        "max_depth": {"type": "categorical", "choices": list(range(6, 6 + trials))},
    }
    search = {"method": "grid", "n_trials": trials, "ensemble_k": 0, "spaces": {"random_forest": space}}
    print(f"Data: {rows} rows x 20 columns; {trials} random-forest trials ({args.trees} trees) + baselines, 5-fold CV; "
          f"{os.cpu_count()} cores here; {repeats} run(s) per worker count")  # fmt: skip

    walls: dict[int, list[float]] = {}
    loads: list[float] = []
    concurrency: dict[int, list[float]] = {}
    for n in counts:
        with app.connection_for_write() as conn:
            for q in ("default", "training"):
                try:
                    conn.default_channel.queue_purge(q)
                except Exception:  # noqa: S110 - an absent queue has nothing to purge
                    pass
        procs = _start_workers(n, env, Path(data_dir))
        try:
            time.sleep(3)  # the workers connect before the clock starts
            for _ in range(repeats):
                t0 = time.perf_counter()
                resp = client.post(
                    "/api/v1/experiments/",
                    {"project": project.pk, "dataset_version": version.pk, "target": "label", "cv_folds": 5,
                     "algorithms": ["random_forest"], "search": search},
                    format="json",
                )  # fmt: skip
                assert resp.status_code in (201, 202), resp.content
                exp_id = resp.json()["id"]
                while Experiment.objects.get(pk=exp_id).status not in ("succeeded", "failed", "cancelled"):
                    time.sleep(0.1)
                wall = time.perf_counter() - t0
                exp = Experiment.objects.get(pk=exp_id)
                assert exp.status == "succeeded", exp.error
                walls.setdefault(n, []).append(wall)
                # Trials running at once on average: the trial jobs' summed run time / wall time.
                busy = sum(
                    (j.finished_at - j.started_at).total_seconds()
                    for j in Job.objects.filter(kind="experiment.trial", params__experiment_id=exp_id)
                    if j.started_at and j.finished_at
                )
                concurrency.setdefault(n, []).append(busy / wall)
                load = os.getloadavg()[0]
                loads.append(load)
                print(f"  {n} worker(s): {wall:6.1f} s ({exp.runs.count()} runs), load average {load:.1f}", flush=True)
        finally:
            _stop(procs)

    base = statistics.median(walls[counts[0]])
    print()
    print(f"{'workers':>8} {'median wall s':>14} {'min..max s':>14} {'speed-up':>9} {'efficiency':>11} "
          f"{'trials at once':>15}")  # fmt: skip
    for n in counts:
        med = statistics.median(walls[n])
        speedup = base / med
        span = f"{min(walls[n]):.1f}..{max(walls[n]):.1f}"
        at_once = statistics.median(concurrency[n])
        print(f"{n:>8} {med:>14.1f} {span:>14} {speedup:>8.2f}x {speedup / (n / counts[0]):>10.0%} {at_once:>15.2f}")
    print(f"1-minute load average during the runs: {min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores "
          "(above the core count, other processes took part of the machine)")  # fmt: skip
    if moto is not None:
        moto.stop()


if __name__ == "__main__":
    main()
