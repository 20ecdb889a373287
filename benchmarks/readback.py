"""Reading a version back: one page of rows and a full export, before and after issue 16.

    .venv/bin/python benchmarks/readback.py [--quick] [--rows N] [--repeat R]

A version of N x 20 mixed columns (the ingest benchmark's shape) with a stratified split is
stored as the platform stores it. Each arm runs in its own fresh process (its peak resident
memory is its own), arms alternate, the best of R runs is reported:

- `page before`: what `GET .../rows/?page=` did: load the whole version, drop the test rows,
  slice the page, convert it to JSON cells;
- `page after`: `datasets.rows.rows_page` from a cursor near the end: the split assignment,
  then only the row groups holding the page;
- `page after, 1 group`: the same on a file written as one big row group (versions stored
  before this change), so the price of old files is known;
- `export before`: the old CSV export (whole frame in memory, Python csv writer, one
  `escape_formula` call per cell);
- `export CSV after` / `export Parquet after`: the streamed exports, consumed to the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ARMS = [
    "baseline",
    "page_before",
    "page_after",
    "page_after_one_group",
    "export_before",
    "export_csv",
    "export_parquet",
]


def _django(data_dir: str) -> None:
    os.environ.update(
        MLPLATFORM_DATA_DIR=data_dir,
        SECRET_KEY=secrets.token_urlsafe(40),
        DEBUG="0",
        HTTPS="0",
        STATIC_MANIFEST="0",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="mlplatform.settings",
    )
    import django

    django.setup()


def prepare(data_dir: str, rows: int) -> dict:
    _django(data_dir)
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from django.core.files.storage import default_storage

    from datasets import splitting
    from datasets.storage import assignment_save, frame_save

    rng = np.random.default_rng(42)
    data = {f"num_{i}": rng.normal(100 * i, 10 + i, rows).round(4) for i in range(14)}
    for i, k in enumerate((3, 5, 12, 200)):
        data[f"cat_{i}"] = rng.choice([f"v{j}" for j in range(k)], rows)
    data["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
    data["flag"] = rng.choice(["yes", "=no"], rows)  # half the cells need formula escaping
    frame = pd.DataFrame(data)
    key = frame_save(frame, prefix="bench").key
    one = default_storage.save("bench/one-group.parquet", _bytes_file(frame, pa, pq))
    result = splitting.assign_split(frame, strategy="stratified", test_size=0.2, val_size=0.2, seed=1, column="flag")
    split_key = assignment_save(result.assignment, prefix="bench").key
    return {"key": key, "one_group_key": one, "split_key": split_key, "rows": rows}


def _bytes_file(frame, pa, pq):
    import io

    from django.core.files.base import ContentFile

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="lz4", row_group_size=10**9)
    return ContentFile(buffer.getvalue())


def arm(name: str, data_dir: str, meta: dict) -> dict:
    _django(data_dir)
    import numpy as np

    from datasets import rows as r
    from datasets.storage import assignment_load, frame_load

    started = time.perf_counter()
    assignment = assignment_load(meta["split_key"])
    visible = np.flatnonzero(assignment != 2)
    start = int(visible[-300])  # a page near the end: the worst case for reading from the start
    size = 50
    out = 0
    if name == "baseline":  # imports and the split assignment only: subtract it from the others' memory
        out = len(visible)
    elif name == "page_before":
        frame = frame_load(meta["key"])
        keep = assignment != 2
        shown = frame[keep].reset_index(drop=True)
        offset = len(visible) - 300
        out = len(r.frame_rows(shown.iloc[offset : offset + size]))
    elif name in ("page_after", "page_after_one_group"):
        key = meta["key"] if name == "page_after" else meta["one_group_key"]
        page = r.rows_page(
            key=key, assignment=assignment, n_rows=meta["rows"], part=None, size=size, start_row_id=start
        )
        out = len(r.frame_rows(page.frame))
    elif name == "export_before":
        import csv
        import io

        frame = frame_load(meta["key"])[assignment != 2]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([r.escape_formula(c) for c in frame.columns])
        for row in frame.itertuples(index=False, name=None):
            writer.writerow([r.escape_formula(v) for v in row])
            if buffer.tell() > 1 << 20:
                out += buffer.tell()
                buffer.seek(0)
                buffer.truncate()
        out += buffer.tell()
    elif name == "export_csv":
        batches = r.visible_batches(meta["key"], assignment, None, None, with_meta=False)
        out = sum(len(chunk) for chunk in r.export_csv(batches))
    elif name == "export_parquet":
        batches = r.visible_batches(meta["key"], assignment, None, None, with_meta=False)
        schema = r.export_schema(meta["key"], None, with_meta=False)
        out = sum(len(chunk) for chunk in r.export_parquet(batches, schema))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "output": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--arm")
    parser.add_argument("--data-dir")
    parser.add_argument("--meta")
    args = parser.parse_args()
    if args.arm:  # a child process: one arm, its figures as JSON
        print(json.dumps(arm(args.arm, args.data_dir, json.loads(args.meta))))
        return
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (2 if args.quick else 3)
    data_dir = tempfile.mkdtemp(prefix="mlp-bench-readback-")
    t0 = time.perf_counter()
    meta = subprocess.run(
        [sys.executable, "-c", f"import json,sys; sys.path.insert(0, {str(ROOT)!r}); "
         f"from benchmarks.readback import prepare; print(json.dumps(prepare({data_dir!r}, {rows})))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    print(f"{rows:,} rows x 20 columns stored in {time.perf_counter() - t0:.1f} s; best of {repeat} runs per arm")
    best: dict[str, dict] = {}
    for _ in range(repeat):
        for name in ARMS:
            out = subprocess.run(
                [sys.executable, __file__, "--arm", name, "--data-dir", data_dir, "--meta", meta],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            figures = json.loads(out)
            if name not in best or figures["seconds"] < best[name]["seconds"]:
                best[name] = figures
    base = best["baseline"]["peak_mb"]
    print(f"{'arm':<24}{'seconds':>10}{'peak MB':>10}{'over baseline':>15}{'output':>14}")
    for name in ARMS:
        f = best[name]
        print(f"{name:<24}{f['seconds']:>10.3f}{f['peak_mb']:>10.0f}{f['peak_mb'] - base:>15.0f}{f['output']:>14,}")
    ratio = lambda a, b: best[a]["seconds"] / max(best[b]["seconds"], 1e-9)  # noqa: E731
    print(f"page: before / after = {ratio('page_before', 'page_after'):.1f}x faster; "
          f"one-group file / 64k groups = {ratio('page_after_one_group', 'page_after'):.1f}x")  # fmt: skip
    print(f"export CSV: before / after = {ratio('export_before', 'export_csv'):.1f}x faster; memory over baseline "
          f"{best['export_before']['peak_mb'] - base:.0f} MB -> {best['export_csv']['peak_mb'] - base:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
