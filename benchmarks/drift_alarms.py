"""Drift alarms: false alarms on in-distribution traffic and detection of real shifts, per volume,
for the platform's drift verdicts and for Evidently's default DataDriftPreset, on the same windows.

    .venv/bin/python benchmarks/drift_alarms.py            # 400 in-distribution windows, 100 per shift
    .venv/bin/python benchmarks/drift_alarms.py --quick    # 100 and 20 (about 15 minutes on 2 cores)

The stream is the demo's loan applications (`demo.loop.loan_applications`: skewed incomes, an
integer age, a rounded and capped credit score, missing values, two categorical features) and
the shift is the simulator's (`simulate_traffic`): one numeric feature moved by a multiple of
its standard deviation; here also a categorical one whose shares move. Each shift's size is
calibrated to a population PSI (0.1, 0.25, 0.5, 1.0) on 100,000 rows against the training bins.

Per volume (30, 100, 300, 1,000, 10,000 predictions per window):
- false-alarm rate = alerts / (features x in-distribution windows);
- detection rate = share of shifted windows whose shifted feature alerts (shifts of PSI >= 0.25
  are the target; PSI 0.1 is shown for reference).
The platform is `deployments.ml.drift.window_drift` (what a snapshot runs) with the default
settings (min_samples 100, Holm over features at alpha 0.01, PSI alert 0.2), and the same rule
with min_samples 30 to show the statistics alone at 30 rows. Evidently runs in a throwaway venv
(benchmarks/.venv-evidently, Evidently 0.7.x) with `DataDriftPreset()` and nothing changed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
EVIDENTLY_FULL_REPORTS = 3  # windows per volume also run through the full Report (2 s each) as a check
VOLUMES = (30, 100, 300, 1_000, 10_000)
SHIFT_PSI = (0.1, 0.25, 0.5, 1.0)
NUMERIC = ["income", "debt", "age", "employment_years", "loan_amount", "credit_history"]
CATEGORICAL = ["region", "home_ownership"]
SHIFTED = {"numeric": "credit_history", "categorical": "region"}
REGIONS = ["north", "south", "east", "west"]


def loan_frame(n: int, seed: int) -> pd.DataFrame:
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")
    import django

    django.setup()
    from demo.loop import loan_applications

    return loan_applications(n=n, seed=seed)[NUMERIC + CATEGORICAL]


def shift_numeric(frame: pd.DataFrame, c: float, std: float) -> pd.DataFrame:
    out = frame.copy()
    out[SHIFTED["numeric"]] = out[SHIFTED["numeric"]] + c * std
    return out


def shift_categorical(frame: pd.DataFrame, c: float, rng: np.random.Generator) -> pd.DataFrame:
    """A share c of the rows not in 'west' moves to 'west' (a new market opening)."""
    out = frame.copy()
    col = out[SHIFTED["categorical"]].to_numpy(dtype=object).copy()
    move = (col != "west") & (rng.random(len(col)) < c)
    col[move] = "west"
    out[SHIFTED["categorical"]] = col
    return out


def population_psi(reference: dict, frame: pd.DataFrame, feature: str) -> float:
    from deployments.ml import drift

    ref = reference["features"][feature]
    if ref["type"] == "numeric":
        values = drift.to_numeric(frame[feature].tolist())
        values = values[np.isfinite(values)]
        return drift.psi(np.asarray(ref["shares"]), drift.bin_shares(values, np.asarray(ref["edges"])))
    counts = drift.categorical_counts(frame[feature].tolist(), set(ref["shares"]))
    cats = sorted(ref["shares"])
    n = sum(counts.values())
    return drift.psi(
        np.array([ref["shares"][c] for c in cats] + [0.0]),
        np.array([counts.get(c, 0) / n for c in [*cats, "__unseen__"]]),
    )


def calibrate(reference: dict, pool: pd.DataFrame, kind: str, target: float, std: float) -> float:
    """The shift size whose population PSI is `target` (bisection on the production pool)."""
    lo, hi = 0.0, 3.0 if kind == "numeric" else 0.95
    for _ in range(20):
        mid = (lo + hi) / 2
        shifted = (
            shift_numeric(pool, mid, std)
            if kind == "numeric"
            else shift_categorical(pool, mid, np.random.default_rng(5))
        )
        if population_psi(reference, shifted, SHIFTED[kind]) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def platform_alerts(reference: dict, arrays: dict, window: pd.DataFrame, min_samples: int) -> dict[str, bool]:
    from deployments.ml import drift

    columns = {c: window[c].astype(object).where(window[c].notna(), None).tolist() for c in window.columns}
    results, _ = drift.window_drift(
        reference["features"],
        arrays,
        columns,
        len(window),
        psi_warn=0.1,
        psi_alert=0.2,
        min_samples=min_samples,
        alpha=0.01,
    )
    return {r.feature: r.status == "alert" for r in results}


EVIDENTLY_SCRIPT = r"""
# Evidently's DataDriftPreset per column is: drop NaN / inf, pick the default test for the column
# (get_stattest(..., None): for a reference over 1,000 rows, Wasserstein (normed) >= 0.1 for
# numeric columns, Jensen-Shannon >= 0.1 for categorical ones), run it with its default
# threshold. A full Report costs about 2 s of CPU (it re-describes the reference every run), so
# every window runs those same calls directly, and the first CHECK windows also run the full
# Report: the two must agree column by column (mismatches are printed).
import sys, json
import numpy as np, pandas as pd
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
from evidently.legacy.core import ColumnType
from evidently.legacy.calculations.stattests.registry import get_stattest
ref = pd.read_parquet(sys.argv[1]); windows = pd.read_parquet(sys.argv[2])
num = json.loads(sys.argv[3]); cat = json.loads(sys.argv[4]); CHECK = int(sys.argv[5])
kinds = {c: ColumnType.Numerical for c in num} | {c: ColumnType.Categorical for c in cat}
clean = lambda s: s.replace([-np.inf, np.inf], np.nan).dropna()
refc = {c: clean(ref[c]) for c in kinds}
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
r = Dataset.from_pandas(ref, data_definition=dd)
out, methods, mismatches = {}, set(), 0
for k, (wid, cur) in enumerate(windows.groupby("window")):
    cur = cur.drop(columns=["window"]).reset_index(drop=True)
    flags = {}
    for c, kind in kinds.items():
        cc = clean(cur[c])
        test = get_stattest(refc[c], cc, kind, None)
        flags[c] = bool(test(refc[c], cc, kind, None).drifted) if len(cc) else False
        methods.add(test.display_name)
    if k < CHECK:
        snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd), r)
        for m in snap.dict()["metrics"]:
            cfg = m.get("config", {})
            if cfg.get("type", "").endswith("ValueDrift") and cfg.get("column") in flags:
                full = m["value"] >= cfg["threshold"]  # distances (the defaults here): drift at or above
                mismatches += full != flags[cfg["column"]]
    out[str(wid)] = flags
print(json.dumps({"flags": out, "methods": sorted(methods), "checked": min(CHECK, len(out)), "mismatches": int(mismatches)}))
"""


def evidently_start(train: pd.DataFrame, windows: list[pd.DataFrame], tmp: Path) -> subprocess.Popen | None:
    """Evidently on `windows`, in its venv, in the background (the platform runs meanwhile)."""
    py = EVIDENTLY_VENV / "bin" / "python"
    if not py.exists():
        print("no Evidently venv: run benchmarks/monitoring.py once to create it", flush=True)
        return None
    ref_path, win_path = tmp / "ref.parquet", tmp / "windows.parquet"
    train.to_parquet(ref_path)
    pd.concat([w.assign(window=i) for i, w in enumerate(windows)], ignore_index=True).to_parquet(win_path)
    return subprocess.Popen(
        [
            str(py),
            "-c",
            EVIDENTLY_SCRIPT,
            str(ref_path),
            str(win_path),
            json.dumps(NUMERIC),
            json.dumps(CATEGORICAL),
            str(EVIDENTLY_FULL_REPORTS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def evidently_finish(proc: subprocess.Popen | None, count: int) -> tuple[list[dict[str, bool]], dict] | None:
    if proc is None:
        return None
    out, err = proc.communicate()
    if proc.returncode != 0:
        print("Evidently failed:", err[-3000:])
        return None
    data = json.loads(out.strip().splitlines()[-1])
    meta = {k: data[k] for k in ("methods", "checked", "mismatches")}
    return [data["flags"].get(str(i), {}) for i in range(count)], meta


def rates(flags: list[dict], labels: list[tuple]) -> dict[str, float]:
    feats = NUMERIC + CATEGORICAL
    null = [f for f, lab in zip(flags, labels, strict=True) if lab[0] == "null"]
    out = {
        "false_alarm": sum(bool(f.get(c)) for f in null for c in feats) / (len(null) * len(feats)),
        "windows_with_alarm": sum(any(f.get(c) for c in feats) for f in null) / len(null),
    }
    for target in SHIFT_PSI:
        hits = [bool(f.get(lab[1])) for f, lab in zip(flags, labels, strict=True) if lab[2] == target]
        out[f"detect_{target}"] = sum(hits) / len(hits)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-evidently", action="store_true")
    args = parser.parse_args()
    n_null = 100 if args.quick else 400
    n_shift = 20 if args.quick else 100
    from deployments.ml.reference import reference_build

    schema = [{"name": c, "type": "numeric"} for c in NUMERIC] + [
        {"name": c, "type": "categorical"} for c in CATEGORICAL
    ]
    train = loan_frame(20_000, seed=7)
    built = reference_build(frame=train, input_schema=schema)
    reference, arrays = built.stats, built.arrays
    pool = loan_frame(100_000, seed=11)  # production: the same population, new applicants
    std = float(pd.to_numeric(train[SHIFTED["numeric"]]).std())
    sizes = {
        (kind, target): calibrate(reference, pool, kind, target, std)
        for kind in ("numeric", "categorical")
        for target in SHIFT_PSI
    }
    print(
        "shift sizes (numeric: x std; categorical: share moved):",
        {f"{k}@{t}": round(v, 3) for (k, t), v in sizes.items()},
    )
    rng = np.random.default_rng(2)
    rows = []
    for n in VOLUMES:
        t0 = time.perf_counter()
        windows: list[pd.DataFrame] = []
        labels: list[tuple[str, str | None, float | None]] = []
        for _ in range(n_null):
            windows.append(pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True))
            labels.append(("null", None, None))
        for (kind, target), c in sizes.items():
            for _ in range(n_shift):
                base = pool.iloc[rng.integers(0, len(pool), n)].reset_index(drop=True)
                w = shift_numeric(base, c, std) if kind == "numeric" else shift_categorical(base, c, rng)
                windows.append(w)
                labels.append(("shift", SHIFTED[kind], target))
        # Evidently on every window, in the background while the platform judges them.
        picked = list(range(len(windows)))
        with tempfile.TemporaryDirectory() as tmp:
            proc = None if args.no_evidently else evidently_start(train, [windows[i] for i in picked], Path(tmp))
            plat = [platform_alerts(reference, arrays, w, 100) for w in windows]
            plat30 = [platform_alerts(reference, arrays, w, 30) for w in windows] if n < 100 else None
            evid = evidently_finish(proc, len(picked))
        row: dict = {"n": n, "windows": len(windows)}
        row |= {f"platform_{k}": v for k, v in rates(plat, labels).items()}
        if plat30 is not None:
            row |= {f"platform_min30_{k}": v for k, v in rates(plat30, labels).items()}
        if evid:
            flags, meta = evid
            row |= {f"evidently_{k}": v for k, v in rates(flags, [labels[i] for i in picked]).items()}
            row |= {f"evidently_{k}": v for k, v in meta.items()}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print_table(rows, n_null, n_shift)


def print_table(rows: list[dict], n_null: int, n_shift: int) -> None:
    feats = len(NUMERIC + CATEGORICAL)
    print(
        f"\n{n_null} in-distribution windows x {feats} features per volume; {n_shift} windows per shift size and kind"
    )
    head = "| rows/window | who | false alarms per feature-window | windows with any alarm |"
    head += "".join(f" detect PSI {t} |" for t in SHIFT_PSI)
    print(head)
    print("|" + "---|" * (4 + len(SHIFT_PSI)))
    for r in rows:
        for name, label in [
            ("platform", "platform"),
            ("platform_min30", "platform, min 30 rows"),
            ("evidently", "Evidently defaults"),
        ]:
            if f"{name}_false_alarm" not in r:
                continue
            line = f"| {r['n']:,} | {label} | {r[f'{name}_false_alarm']:.2%} | {r[f'{name}_windows_with_alarm']:.1%} |"
            line += "".join(f" {r[f'{name}_detect_{t}']:.0%} |" for t in SHIFT_PSI)
            print(line)


if __name__ == "__main__":
    main()
