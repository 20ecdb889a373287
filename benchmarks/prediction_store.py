"""Columnar prediction store benchmark: snapshots over every prediction of large windows.

    .venv/bin/python benchmarks/prediction_store.py                 # 1M and 10M rows, JSON path at 100k, Evidently at 1M
    .venv/bin/python benchmarks/prediction_store.py --rows 1000000 --skip-10m --skip-evidently

What is measured (15 numeric + 5 categorical features, drift in 5, the frames of benchmarks/monitoring.py):
1. writing the window's segments through the store's writer (`columnar.frame_table` +
   `prediction_store.segment_write`, 100,000-row segments as batch chunks write them; the
   Prediction rows themselves are not inserted: the snapshot's drift reads only segments);
2. `snapshots.snapshot_compute` over EVERY row of the window (no sampling), in a child process:
   wall time and peak RSS (resource.getrusage);
3. the old JSON path on the same kind of rows (inputs as jsonb in PostgreSQL, COPY), at
   --json-rows (default 100,000: at 1M it takes minutes), same snapshot, same child process;
4. bytes per logged prediction: the Prediction row with its JSON inputs vs without + its share
   of the Parquet segment;
5. batch scoring: raw predict_proba vs predict + logging every row (a segment per chunk);
6. Evidently's DataDriftPreset on the same 1M frames (the venv of benchmarks/monitoring.py);
7. the monitoring dashboard's server time (median of 20).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlp_store_bench")

from benchmarks.monitoring import OUT, evidently, make_frames, schema, setup_django  # noqa: E402

SEGMENT_ROWS = 100_000


def _project(name: str):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from deployments.models import Deployment, PredictionSegment
    from projects.models import Membership, Project

    user, _ = get_user_model().objects.get_or_create(username="bench")
    for project in Project.objects.filter(name=name):
        with connection.cursor() as c:
            c.execute("DELETE FROM deployments_prediction WHERE project_id = %s", [project.pk])
        from deployments import prediction_store

        for d in Deployment.objects.filter(project=project):
            prediction_store.segments_delete(PredictionSegment.objects.filter(deployment=d))
        Deployment.objects.filter(project=project).delete()
        project.delete()
    project = Project.objects.create(name=name, task_type="classification", created_by=user)
    Membership.objects.create(project=project, user=user, role="owner")
    return project, user


def _version(project, ref):
    from deployments.ml.reference import reference_build
    from deployments.models import ModelVersion
    from mlplatform.artifacts import bytes_save

    rng = np.random.default_rng(1)
    built = reference_build(
        frame=ref,
        input_schema=schema(),
        predictions=(ref["n5"] > 0).astype(int).to_numpy().astype(object),
        confidences=0.5 + rng.random(len(ref)) / 2,
    )
    stored = bytes_save(built.arrays_npz(), prefix="monitoring/references", suffix=".npz")
    return ModelVersion.objects.create(
        project=project,
        version=1,
        task_type="classification",
        target="y",
        classes=[0, 1],
        artifact_key="benchmark/none",
        sha256="0" * 64,
        input_schema=schema(),
        reference_stats=built.stats | {"arrays_key": stored.key, "arrays_sha256": stored.sha256},
    )


def write_segments(deployment, cur, minutes: float = 50.0) -> dict[str, float]:
    """The window's segments through the store's writer, SEGMENT_ROWS rows each."""
    from datetime import timedelta

    import pyarrow as pa
    from django.db import transaction
    from django.utils import timezone

    from deployments import prediction_store
    from deployments.batch.arrow_json import uuid7_raw
    from deployments.ml import columnar

    types, numeric = prediction_store.version_types(deployment.model_version_id)
    rng = np.random.default_rng(2)
    n = len(cur)
    start = timezone.now() - timedelta(minutes=minutes + 5)
    step = timedelta(minutes=minutes) / max(1, n // SEGMENT_ROWS)
    t0 = time.perf_counter()
    size = 0
    for k, lo in enumerate(range(0, n, SEGMENT_ROWS)):
        part = cur.iloc[lo : lo + SEGMENT_ROWS]
        m = len(part)
        table = columnar.frame_table(
            pa.Table.from_pandas(part, preserve_index=False),
            ids=uuid7_raw(m),
            created_at=start + step * k,
            model_version_id=deployment.model_version_id,
            source="api",
            predictions=(part["n5"] > 0).astype(int).to_numpy(),
            confidences=0.5 + rng.random(m) / 2,
            types=types,
            prediction_numeric=numeric,
        )
        with transaction.atomic():
            seg = prediction_store.segment_write(
                project_id=deployment.project_id, deployment_id=deployment.pk, table=table
            )
        size += seg.bytes
    return {"write_s": time.perf_counter() - t0, "segment_bytes_per_row": size / n}


def insert_json(deployment, cur) -> float:
    """The old path: every row with its inputs as jsonb, COPYed."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from deployments.models import uuid7

    rng = np.random.default_rng(3)
    n = len(cur)
    records = cur.to_dict("records")
    pred = (cur["n5"] > 0).astype(int).to_numpy()
    start = timezone.now() - timedelta(minutes=55)
    step = timedelta(minutes=50) / n
    t0 = time.perf_counter()
    with connection.cursor() as c:
        with c.cursor.copy(
            "COPY deployments_prediction (id, project_id, deployment_id, model_version_id, source, inputs, "
            "prediction, confidence, status, latency_ms, caller, actual_source, created_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row(
                    (
                        uuid7(),
                        deployment.project_id,
                        deployment.pk,
                        deployment.model_version_id,
                        "api",
                        json.dumps(records[i]),
                        str(int(pred[i])),
                        float(0.5 + rng.random() / 2),
                        "accepted",
                        float(rng.gamma(2.0, 3.0)),
                        "",
                        "",
                        start + step * i,
                    )
                )
        c.execute("ANALYZE deployments_prediction")
    return time.perf_counter() - t0


def row_bytes(deployment, with_inputs: bool) -> float:
    """Average bytes of a Prediction row (heap tuple incl. TOASTed JSON) as logged, with or without inputs."""
    from django.db import connection

    expr = "pg_column_size(p.*)" if with_inputs else "pg_column_size(p.*) - coalesce(pg_column_size(p.inputs), 0)"
    with connection.cursor() as c:
        c.execute(f"SELECT avg({expr}) FROM deployments_prediction p WHERE deployment_id = %s", [deployment.pk])
        return float(c.fetchone()[0] or 0)


def child_snapshot(deployment_id: int, sample: int) -> None:
    """Run in a fresh process: one snapshot over the last hour, its time and peak RSS as JSON."""
    setup_django()
    from deployments.models import Deployment
    from deployments.monitoring.services import snapshots
    from deployments.registry.selectors import reference_arrays

    d = Deployment.objects.select_related("model_version").get(pk=deployment_id)
    d.monitoring = {"sample_size": sample}
    d.save(update_fields=["monitoring"])
    reference_arrays(d.model_version.reference_stats)  # the worker's cache, as after its first snapshot
    t0 = time.perf_counter()
    snap = snapshots.snapshot_compute(deployment=d, window_minutes=60)
    seconds = time.perf_counter() - t0
    drifted = sorted(f["feature"] for f in snap.data["drift"]["features"] if f["status"] != "ok")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    print(
        json.dumps({"seconds": seconds, "rows": snap.data["drift"]["sample_size"], "peak_mb": peak, "drifted": drifted})
    )


def snapshot_in_child(deployment_id: int, sample: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(deployment_id), "--sample", str(sample)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def batch_end_to_end(deployment, ref, cur) -> dict[str, float]:
    """Raw pipeline.predict (+ predict_proba) over the frame vs the same plus logging every row
    for monitoring through the batch logger (one segment from Arrow per 100k chunk, no PostgreSQL
    row per prediction). The real job path, output file included: benchmarks/serving.py --batch-only."""
    import pyarrow as pa
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from deployments.batch.log_source import LogChunk, LogTarget, _segment_chunk
    from jobs.models import Job

    num = [c for c in cur.columns if c.startswith("n")]
    cat = [c for c in cur.columns if c.startswith("c")]
    pipe = Pipeline(
        [
            (
                "pre",
                ColumnTransformer([("n", StandardScaler(), num), ("c", OneHotEncoder(handle_unknown="ignore"), cat)]),
            ),
            ("m", LogisticRegression(max_iter=200)),
        ]
    ).fit(ref.iloc[:50_000], (ref["n5"].iloc[:50_000] > 0).astype(int))
    t0 = time.perf_counter()
    for lo in range(0, len(cur), SEGMENT_ROWS):
        part = cur.iloc[lo : lo + SEGMENT_ROWS]
        pipe.predict_proba(part)
    raw = time.perf_counter() - t0
    target = LogTarget(deployment, deployment.model_version, Job(pk=990_000 + deployment.pk), ["0", "1"])
    t0 = time.perf_counter()
    for lo in range(0, len(cur), SEGMENT_ROWS):
        part = cur.iloc[lo : lo + SEGMENT_ROWS]
        proba = pipe.predict_proba(part)
        labels = proba.argmax(1)
        chunk = LogChunk(pa.Table.from_pandas(part, preserve_index=False), labels, proba.max(1), proba, 1.0)
        _segment_chunk(target, chunk)
    logged = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"raw_predict_s": raw, "predict_and_log_s": logged, "ratio": raw / logged, "process_peak_mb": peak}


def dashboard_ms(user, project, deployment) -> float:
    from django.test import Client

    client = Client()
    client.force_login(user)
    url = f"/projects/{project.pk}/deployments/{deployment.pk}/monitoring/"
    assert client.get(url).status_code == 200
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json-rows", type=int, default=100_000)
    parser.add_argument("--skip-10m", action="store_true")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--name", default="prediction-store-bench", help="the benchmark project (deleted first)")
    parser.add_argument("--skip-json", action="store_true")
    parser.add_argument("--child", type=int, default=None)
    parser.add_argument("--sample", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        child_snapshot(args.child, args.sample)
        return
    setup_django()
    from deployments.models import Deployment

    result: dict[str, object] = {"cores": os.cpu_count()}
    ref, cur = make_frames(args.rows, args.rows)
    project, user = _project(args.name)
    mv = _version(project, ref)

    d1 = Deployment.objects.create(project=project, name="columnar-1m", model_version=mv)
    result["columnar_1m_write"] = write_segments(d1, cur)
    result["columnar_1m_snapshot"] = snapshot_in_child(d1.pk, args.rows)
    print("columnar", args.rows, result["columnar_1m_write"], result["columnar_1m_snapshot"], flush=True)
    result["dashboard_ms"] = dashboard_ms(user, project, d1)
    print("dashboard ms", result["dashboard_ms"], flush=True)

    if not args.skip_batch:
        db = Deployment.objects.create(project=project, name="batch", model_version=mv)
        result["batch"] = batch_end_to_end(db, ref, cur)
        print("batch", result["batch"], flush=True)

    if not args.skip_json:
        dj = Deployment.objects.create(project=project, name="json", model_version=mv)
        json_cur = cur.iloc[: args.json_rows]
        result["json_insert_s"] = insert_json(dj, json_cur)
        result["json_snapshot"] = snapshot_in_child(dj.pk, args.json_rows)
        dc = Deployment.objects.create(project=project, name="columnar-same", model_version=mv)
        write_segments(dc, json_cur)
        result["columnar_same_rows_snapshot"] = snapshot_in_child(dc.pk, args.json_rows)
        result["bytes_per_prediction_before"] = row_bytes(dj, with_inputs=True)
        result["bytes_per_prediction_after"] = row_bytes(dj, with_inputs=False) + float(
            result["columnar_1m_write"]["segment_bytes_per_row"]
        )
        print(
            "json", args.json_rows, result["json_snapshot"], "columnar same rows", result["columnar_same_rows_snapshot"]
        )
        print(
            "bytes/prediction before",
            result["bytes_per_prediction_before"],
            "after",
            result["bytes_per_prediction_after"],
        )

    if not args.skip_evidently:
        OUT.mkdir(parents=True, exist_ok=True)
        ref_path, cur_path = OUT / "store_reference.parquet", OUT / "store_current.parquet"
        ref.to_parquet(ref_path)
        cur.to_parquet(cur_path)
        result["evidently_s"] = evidently(ref_path, cur_path)
        print("evidently", result["evidently_s"], flush=True)

    if not args.skip_10m:
        d10 = Deployment.objects.create(project=project, name="columnar-10m", model_version=mv)
        total = {"write_s": 0.0}
        for _ in range(10):  # the same 1M frame ten times (fresh ids and times): 10M rows
            total["write_s"] += write_segments(d10, cur)["write_s"]
        result["columnar_10m_write"] = total
        result["columnar_10m_snapshot"] = snapshot_in_child(d10.pk, 10 * args.rows)
        print("columnar 10x", result["columnar_10m_snapshot"], flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prediction_store.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    if not os.environ.get("BENCH_KEEP"):
        _project(args.name)


if __name__ == "__main__":
    main()
