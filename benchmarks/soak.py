"""Soak of the predict API with faults, and 4 reviewers racing over one queue.

    .venv/bin/python benchmarks/soak.py            # 10 minutes (the issue's soak)
    .venv/bin/python benchmarks/soak.py --quick    # 100 seconds

The predict API runs under gunicorn (2 workers, API-key auth, logging on) against its own
PostgreSQL database, with a real Celery worker beside it working through jobs. wrk keeps
8 connections busy (the highest closed-loop rate this machine sustains) in ten equal segments:
at the start of segment 4 the Celery worker is SIGKILLed (and restarted 5 s later), at the
start of segment 7 Redis is restarted (no persistence: its queues are lost). For each
segment: requests, errors, p50/p99. At the end: 200 responses (from gunicorn's access log,
exact) against logged predictions (the target is equality), and every job queued before the
faults finished. Then 4 reviewers decide 400 queued items at once over HTTP: no item may be
decided twice.

Restarting Redis affects everything on this machine that uses it: do not run beside tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import serving  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from tests.services import restart_redis  # noqa: E402  (the serving benchmark's model, platform set-up, wrk and gunicorn helpers)

ROOT = HERE.parent


def start_worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "celery"),
            "-A",
            "mlplatform",
            "worker",
            "-Q",
            "default,training,logging",
            "-c",
            "1",
            "--loglevel",
            "WARNING",
            "-n",
            f"soak-{time.monotonic_ns()}@%h",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def gunicorn_logged(env: dict, port: int, access_log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "mlplatform.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(s)s %(U)s",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    serving.wait_http(f"http://127.0.0.1:{port}/healthz/")
    return proc


def review_race(base: str, tokens: list[str], ids: list[int]) -> dict:
    """Four reviewers approve the same items in different orders; count the winners per item."""
    wins: dict[int, int] = dict.fromkeys(ids, 0)
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def reviewer(token: str, seed: int) -> None:
        order = ids[:]
        random.Random(seed).shuffle(order)
        for item in order:
            req = urllib.request.Request(
                f"{base}/api/v1/reviews/{item}/approve/",
                method="POST",
                data=b"{}",
                headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    code = resp.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            with lock:
                codes[code] = codes.get(code, 0) + 1
                if code == 200:
                    wins[item] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=reviewer, args=(t, i)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "seconds": time.perf_counter() - t0,
        "codes": codes,
        "decided_twice": sum(1 for n in wins.values() if n > 1),
        "undecided": sum(1 for n in wins.values() if n == 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100 s instead of 10 minutes")
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    total = args.seconds or (100 if args.quick else 600)
    segment = max(5, total // 10)
    tmp = Path(tempfile.mkdtemp(prefix="mlp-soak-"))
    frame = serving.make_frame(20_000)
    features = [c for c in frame.columns if c != "label"]
    pipe = serving.make_pipeline().fit(frame[features], frame["label"])
    body = json.dumps({"instances": [frame[features].iloc[0].to_dict()]})
    env = serving.platform_env(tmp)
    env["DATABASE_URL"] = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_bench_soak")
    env["REDIS_URL"] = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/10")
    env["JOB_REQUEUE_AFTER_SECONDS"] = "10"
    ctx = serving.setup_platform(env, frame, pipe)

    from django.db import connection, transaction

    from accounts.services import token_create
    from deployments.models import Prediction, ReviewItem
    from jobs.models import Job
    from jobs.runner import job_enqueue, sweep_stale_jobs
    from projects.models import Membership
    from tests.factories import UserFactory

    deployment, project = ctx["deployment"], ctx["project"]
    access_log = tmp / "access.log"
    port = serving.free_port()
    web = gunicorn_logged(env, port, access_log)
    worker = start_worker(env)
    url = f"http://127.0.0.1:{port}/api/v1/deployments/{deployment.pk}/predict/"
    auth = f"Api-Key {ctx['key']}"
    serving.wrk(url, body, seconds=5, connections=2, auth=auth)  # warm-up
    from deployments.serving import prediction_log

    time.sleep(1)
    serving.drained(prediction_log)  # the warm-up's rows written before counting them
    warm = Prediction.objects.filter(deployment=deployment).count()
    access_log.write_text("")  # count from here on

    with transaction.atomic():
        jobs = [
            job_enqueue(project=project, kind="diagnostics.sleep", params={"seconds": 2}) for _ in range(int(total / 4))
        ]
    print(
        f"soak: {total} s in 10 segments of {segment} s, wrk 8 connections, gunicorn 2 workers, logging on; "
        f"{len(jobs)} jobs queued for the Celery worker\n"
    )
    print(f"{'segment':<8}{'phase':<32}{'requests':>10}{'errors':>8}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}")
    rows = []
    ok_total = 0
    for i in range(1, 11):
        phase = "before faults" if i < 4 else ""
        if i == 4:
            os.killpg(worker.pid, 9)
            threading.Timer(5, lambda: globals().__setitem__("_restarted", start_worker(env))).start()
            phase = "Celery worker SIGKILLed, restarted at +5 s"
        elif i in (5, 6):
            phase = "after worker kill"
        elif i == 7:
            restart_redis()
            phase = "Redis restarted (queues lost)"
        elif i > 7:
            phase = "after Redis restart"
        r = serving.wrk(url, body, seconds=segment, connections=8, auth=auth)
        ok_total += r["ok"]
        rows.append((i, phase, r))
        print(f"{i:<8}{phase:<32}{r['requests']:>10}{r['errors']:>8}{r['rps']:>8.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}")
    time.sleep(2)
    serving.drained(prediction_log)  # the web workers' drainers write what is still queued
    connection.close()
    served_200 = sum(
        1 for line in access_log.read_text().splitlines() if line.startswith("200 ") and line.endswith("/predict/")
    )
    logged = Prediction.objects.filter(deployment=deployment).count() - warm
    errors = sum(r["errors"] for _, _, r in rows)
    print(
        f"\n200 responses (gunicorn access log): {served_200}; counted by wrk: {ok_total}; "
        f"logged predictions: {logged} -> {'EQUAL' if logged == served_200 else 'DIFFERENT'}; errors: {errors}"
    )

    # Jobs: the sweep (beat does it every 30 s) republishes what Redis lost; all must finish.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sweep_stale_jobs()
        left = Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(status="succeeded").count()
        if not left:
            break
        time.sleep(3)
    statuses = dict(
        Job.objects.filter(pk__in=[j.pk for j in jobs])
        .values_list("status")
        .annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id"))
        .order_by()
    )
    print(f"jobs queued before the faults: {len(jobs)} -> {statuses}")

    # Four reviewers over one queue of 400 items.
    preds = list(Prediction.objects.filter(deployment=deployment).order_by("created_at")[:400])
    ReviewItem.objects.bulk_create(
        [
            ReviewItem(
                project=project,
                deployment=deployment,
                prediction=p,
                reason="low_confidence",
                mode="flag",
                confidence=p.confidence,
                model_label=p.prediction,
            )
            for p in preds
        ]
    )
    ids = list(ReviewItem.objects.filter(deployment=deployment, status="pending").values_list("pk", flat=True))
    tokens = []
    for n in range(4):
        user = UserFactory(username=f"reviewer{n}")
        Membership.objects.create(project=project, user=user, role="reviewer")
        tokens.append(token_create(user=user)[1])
    race = review_race(f"http://127.0.0.1:{port}", tokens, ids)
    decided = ReviewItem.objects.filter(pk__in=ids).exclude(status="pending").count()
    print(
        f"review race: 4 reviewers x {len(ids)} items in {race['seconds']:.1f} s, answers {race['codes']}; "
        f"decided {decided}, decided twice {race['decided_twice']}, undecided {race['undecided']}"
    )

    serving.stop(web)
    for proc in (worker, globals().get("_restarted")):
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 9)
    ok = logged == served_200 and race["decided_twice"] == 0 and decided == len(ids)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
