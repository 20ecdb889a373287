"""Monitoring benchmark: the platform's snapshot vs plain numpy/scipy vs Evidently, side by side.

    .venv/bin/python benchmarks/monitoring.py            # 1,000,000 x 20 vs a 1,000,000-row reference
    .venv/bin/python benchmarks/monitoring.py --quick    # 100,000 rows

What is measured, in one run, on the same data (15 numeric + 5 categorical features; drift
injected in 5 of them):
1. reference build: `reference_stats_build` on the training frame (once, at registration);
2. the platform's snapshot: `snapshots.snapshot_compute` over the predictions logged in
   PostgreSQL (inserted with COPY first): traffic and latency percentiles in SQL, PSI + KS
   (numeric) and PSI + chi-square (categorical) for every feature, plus JS and Wasserstein,
   prediction / confidence drift, data quality. Run twice: with the default bounded sample
   (the newest 200,000 predictions of the window) and with every logged prediction;
3. the same statistics computed directly with numpy / scipy on in-memory arrays
   (`ks_2samp` on the full arrays, PSI on training-quantile bins, `chisquare`);
4. Evidently's `DataDriftPreset` on the same frames, in a throwaway venv
   (benchmarks/.venv-evidently, created here: Evidently 0.7.x needs pandas < 3);
5. the deployment dashboard's server time (Django test client, median of 20 requests).

It needs PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/mlp_monitoring_bench,
created and migrated if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
N_NUM, N_CAT = 15, 5
DRIFTED_NUM = ["n0", "n1", "n2", "n3"]
DRIFTED_CAT = ["c0"]


def make_frames(n_ref: int, n_cur: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(n: int, drifted: bool) -> pd.DataFrame:
        data: dict[str, np.ndarray] = {}
        for i in range(N_NUM):
            shift = 0.5 if drifted and f"n{i}" in DRIFTED_NUM else 0.0
            data[f"n{i}"] = rng.normal(shift, 1.0 + i * 0.1, n)
        cats = np.array(["a", "b", "c", "d", "e", "f"])
        for i in range(N_CAT):
            p = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
            if drifted and f"c{i}" in DRIFTED_CAT:
                p = p[::-1]
            data[f"c{i}"] = cats[rng.choice(6, n, p=p)]
        return pd.DataFrame(data)

    return frame(n_ref, False), frame(n_cur, True)


def schema() -> list[dict]:
    return [{"name": f"n{i}", "type": "numeric"} for i in range(N_NUM)] + [
        {"name": f"c{i}", "type": "categorical"} for i in range(N_CAT)
    ]


def direct_numpy_scipy(ref: pd.DataFrame, cur: pd.DataFrame) -> float:
    """The statistics on in-memory arrays, with nothing precomputed (the fair baseline)."""
    from scipy import stats

    t0 = time.perf_counter()
    for i in range(N_NUM):
        r, c = ref[f"n{i}"].to_numpy(), cur[f"n{i}"].to_numpy()
        stats.ks_2samp(r, c)
        edges = np.unique(np.quantile(r, np.linspace(0, 1, 11)[1:-1]))
        rs = np.bincount(np.searchsorted(edges, r), minlength=edges.size + 1) / r.size
        cs = np.bincount(np.searchsorted(edges, c), minlength=edges.size + 1) / c.size
        rs, cs = np.clip(rs, 1e-4, None), np.clip(cs, 1e-4, None)
        np.sum((cs - rs) * np.log(cs / rs))
    for i in range(N_CAT):
        r, c = ref[f"c{i}"], cur[f"c{i}"]
        rs = r.value_counts(normalize=True)
        cc = c.value_counts().reindex(rs.index, fill_value=0)
        stats.chisquare(cc.to_numpy(), rs.to_numpy() * cc.sum())
        cs = cc / cc.sum()
        np.sum((np.clip(cs, 1e-4, None) - rs) * np.log(np.clip(cs, 1e-4, None) / rs))
    return time.perf_counter() - t0


EVIDENTLY_SCRIPT = r"""
import sys, time, json
import pandas as pd
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
num = [c for c in ref.columns if c.startswith("n")]; cat = [c for c in ref.columns if c.startswith("c")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
t0 = time.perf_counter()
r = Dataset.from_pandas(ref, data_definition=dd); c = Dataset.from_pandas(cur, data_definition=dd)
Report([DataDriftPreset()]).run(c, r)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def evidently(ref_path: Path, cur_path: Path) -> float | None:
    py = EVIDENTLY_VENV / "bin" / "python"
    if not py.exists():
        print("creating", EVIDENTLY_VENV, "(Evidently 0.7.x, pandas<3)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "evidently>=0.7,<0.8", "pandas<3", "pyarrow"], check=True
        )
    proc = subprocess.run(
        [str(py), "-c", EVIDENTLY_SCRIPT, str(ref_path), str(cur_path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print("Evidently failed:", proc.stderr[-2000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def setup_django() -> None:
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_monitoring_bench")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("HTTPS", "0")
    os.environ.setdefault("STATIC_MANIFEST", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")
    sys.path.insert(0, str(ROOT))
    import psycopg

    url = os.environ["DATABASE_URL"]
    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _cleanup(Project, Deployment, name: str) -> None:
    from django.db import connection

    for project in Project.objects.filter(name=name):
        with connection.cursor() as c:  # a million rows: faster than the ORM's cascade collector
            c.execute("DELETE FROM deployments_prediction WHERE project_id = %s", [project.pk])
        Deployment.objects.filter(project=project).delete()
        project.delete()


def platform(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, float]:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from deployments.ml.reference import reference_build
    from deployments.models import Deployment, ModelVersion, Prediction, uuid7
    from deployments.monitoring.services import snapshots
    from deployments.monitoring.services.config import DEFAULTS
    from deployments.registry.selectors import reference_arrays
    from mlplatform.artifacts import bytes_save
    from projects.models import Membership, Project

    out: dict[str, float] = {}
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench")
    user.set_password("bench-password-123")
    user.save()
    _cleanup(Project, Deployment, "monitoring-bench")
    project = Project.objects.create(name="monitoring-bench", task_type="classification", created_by=user)
    Membership.objects.create(project=project, user=user, role="owner")

    rng = np.random.default_rng(1)
    ref_pred = (ref["n5"] > 0).astype(int).to_numpy()
    ref_conf = 0.5 + rng.random(len(ref)) / 2
    t0 = time.perf_counter()
    built = reference_build(frame=ref, input_schema=schema(), predictions=ref_pred.astype(object), confidences=ref_conf)
    stored = bytes_save(built.arrays_npz(), prefix="monitoring/references", suffix=".npz")
    reference = built.stats | {"arrays_key": stored.key, "arrays_sha256": stored.sha256}
    out["reference_build"] = time.perf_counter() - t0
    mv = ModelVersion.objects.create(
        project=project,
        version=1,
        task_type="classification",
        target="y",
        classes=[0, 1],
        artifact_key="benchmark/none",
        sha256="0" * 64,
        input_schema=schema(),
        reference_stats=reference,
    )
    deployment = Deployment.objects.create(project=project, name="bench", model_version=mv)

    print(f"inserting {len(cur):,} predictions with COPY ...", flush=True)
    t0 = time.perf_counter()
    now = timezone.now()
    n = len(cur)
    records = cur.to_dict("records")
    cur_pred = (cur["n5"] > 0).astype(int).to_numpy()
    cur_conf = 0.5 + rng.random(n) / 2
    lat = rng.gamma(2.0, 3.0, n)
    start = now - timedelta(minutes=59)
    step = timedelta(minutes=58) / n
    with connection.cursor() as c:
        with c.cursor.copy(
            "COPY deployments_prediction (id, project_id, deployment_id, model_version_id, source, inputs, "
            "prediction, confidence, status, latency_ms, caller, actual_source, created_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row(
                    (
                        uuid7(),
                        project.pk,
                        deployment.pk,
                        mv.pk,
                        "api",
                        json.dumps(records[i]),
                        str(int(cur_pred[i])),
                        float(cur_conf[i]),
                        "accepted",
                        float(lat[i]),
                        "",
                        "",
                        start + step * i,
                    )
                )
        c.execute("ANALYZE deployments_prediction")
    out["insert"] = time.perf_counter() - t0
    assert Prediction.objects.filter(deployment=deployment).count() == n
    reference_arrays(reference)  # the worker's process cache, as after its first snapshot

    default = int(DEFAULTS["sample_size"])
    runs = (("snapshot_cold", default), ("snapshot_default_sample", default), ("snapshot_all_rows", n))
    for label, sample in runs:
        deployment.monitoring = {"sample_size": sample}
        deployment.save()
        t0 = time.perf_counter()
        snap = snapshots.snapshot_compute(deployment=deployment, window_minutes=24 * 60)
        out[label] = time.perf_counter() - t0
        drifted = sorted(f["feature"] for f in snap.data["drift"]["features"] if f["status"] != "ok")
        out[label + "_rows"] = snap.data["drift"]["sample_size"]
        print(f"  {label}: {out[label]:.2f} s on {snap.data['drift']['sample_size']:,} rows; drifted: {drifted}")

    client = Client()
    client.force_login(user)
    url = f"/projects/{project.pk}/deployments/{deployment.pk}/monitoring/"
    assert client.get(url).status_code == 200
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        res = client.get(url)
        times.append(time.perf_counter() - t0)
        assert res.status_code == 200
    out["dashboard_ms"] = float(np.median(times) * 1000)
    t0 = time.perf_counter()
    client.get(f"/api/v1/deployments/{deployment.pk}/monitoring/")
    out["api_ms"] = (time.perf_counter() - t0) * 1000
    if not os.environ.get("BENCH_KEEP"):
        _cleanup(Project, Deployment, "monitoring-bench")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    n = args.rows or (100_000 if args.quick else 1_000_000)
    print(
        f"monitoring benchmark: {n:,} logged predictions vs a {n:,}-row training reference, "
        f"{N_NUM} numeric + {N_CAT} categorical features (machine: {os.cpu_count()} cores, shared)"
    )
    ref, cur = make_frames(n, n)
    OUT.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = OUT / "reference.parquet", OUT / "current.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)

    setup_django()
    result = platform(ref, cur)
    result["direct_numpy_scipy"] = direct_numpy_scipy(ref, cur)
    print(f"  direct numpy/scipy on in-memory arrays: {result['direct_numpy_scipy']:.2f} s")
    ev = None if args.skip_evidently else evidently(ref_path, cur_path)
    if ev is not None:
        result["evidently"] = ev
        print(f"  Evidently DataDriftPreset: {ev:.2f} s")

    print("\nresults")
    print(f"  reference build (once, at registration)   {result['reference_build']:8.2f} s")
    print(f"  snapshot, first in a fresh process        {result['snapshot_cold']:8.2f} s")
    print(
        f"  snapshot, default bounded sample          {result['snapshot_default_sample']:8.2f} s   target < 10 s "
        f"({int(result['snapshot_default_sample_rows']):,} newest rows)"
    )
    print(f"  snapshot, every logged prediction         {result['snapshot_all_rows']:8.2f} s")
    print(f"  direct numpy/scipy, in memory             {result['direct_numpy_scipy']:8.2f} s")
    if ev is not None:
        print(f"  Evidently DataDriftPreset, in memory      {ev:8.2f} s")
        print(f"  Evidently / snapshot (all rows)           {ev / result['snapshot_all_rows']:8.1f} x   target >= 10x")
        print(f"  Evidently / snapshot (default sample)     {ev / result['snapshot_default_sample']:8.1f} x")
    print(f"  dashboard server time (median of 20)      {result['dashboard_ms']:8.1f} ms  target < 300 ms")
    print(f"  monitoring API                            {result['api_ms']:8.1f} ms")
    (OUT / "monitoring.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
