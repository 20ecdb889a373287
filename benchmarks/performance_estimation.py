"""Performance estimated before labels: does the estimate's interval contain the realized value?

    .venv/bin/python benchmarks/performance_estimation.py            # 60 windows per shift, 500 rows each
    .venv/bin/python benchmarks/performance_estimation.py --quick    # 20 windows per shift
    .venv/bin/python benchmarks/performance_estimation.py --skip-nannyml

The stream is the demo's loan applications (`demo.loop.loan_applications`, what the simulator
sends): their label is a fixed function of the features plus noise, so choosing rows by their
features is a true covariate shift (P(label | features) unchanged). A model is fitted on a
training part, its calibration checked on a held-out part (`experiments.ml.calibration`, what
the final evaluation stores), then windows of production rows are drawn:
- covariate shift at four levels: rows chosen with weight exp(c * z) on the simulator's drift
  feature (credit history; z its standardized value), c = 0, 0.5, 1, 2 (c = 0: no shift);
- prior shift: the share of "approve" moved to 20% and 80% (P(features | label) unchanged: the
  case where confidences are *not* enough, shown as such);
- concept shift (the simulator's changed concept): the labels of high credit-history rows
  flipped; no method without labels can see it.
For every window: the platform's estimate (`deployments.ml.estimation.estimate_classification`,
300 simulated label sets) of accuracy, F1 (positive class "approve") and ROC AUC with its 95%
interval vs the realized value; coverage = share of windows whose interval contains the realized
value (target >= 90% where the method applies), MAE = mean |estimate - realized|.
NannyML's CBPE (0.13, in a throwaway venv benchmarks/.venv-nannyml) gets the same reference
(the held-out part, with labels) and the same windows (one chunk each); its interval is its own
"sampling error" band (value +/- 3 standard errors, its default).
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
NANNYML_VENV = ROOT / "benchmarks" / ".venv-nannyml"
NUMERIC = ["income", "debt", "age", "employment_years", "loan_amount", "credit_history"]
CATEGORICAL = ["region", "home_ownership"]
TARGET, POSITIVE = "approved", "approve"
METRICS = ("accuracy", "f1", "roc_auc")
WINDOW = 500


def loan_pool(n: int, seed: int) -> pd.DataFrame:
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlplatform.settings")
    import django

    django.setup()
    from demo.loop import loan_applications

    frame = loan_applications(n=n, seed=seed)
    return frame.iloc[:n].reset_index(drop=True)  # without the demo's appended duplicates


def fit(train: pd.DataFrame, algorithm: str):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                CATEGORICAL,
            ),
        ]
    )
    model = (
        LogisticRegression(max_iter=1000)
        if algorithm == "logistic"
        else HistGradientBoostingClassifier(max_iter=200, random_state=0)
    )
    return Pipeline([("pre", pre), ("model", model)]).fit(train[NUMERIC + CATEGORICAL], train[TARGET])


def windows(pool: pd.DataFrame, per_shift: int, rng: np.random.Generator) -> list[tuple[str, pd.DataFrame]]:
    """(shift label, window frame) for every window of every shift."""
    z = ((pool["credit_history"] - pool["credit_history"].mean()) / pool["credit_history"].std()).to_numpy()
    out: list[tuple[str, pd.DataFrame]] = []
    for c in (0.0, 0.5, 1.0, 2.0):
        w = np.exp(c * z)
        w /= w.sum()
        for _ in range(per_shift):
            out.append((f"covariate c={c:g}", pool.iloc[rng.choice(len(pool), WINDOW, replace=False, p=w)]))
    pos = np.flatnonzero(pool[TARGET].to_numpy() == POSITIVE)
    neg = np.flatnonzero(pool[TARGET].to_numpy() != POSITIVE)
    for share in (0.2, 0.8):
        k = int(WINDOW * share)
        for _ in range(per_shift):
            idx = np.r_[rng.choice(pos, k, replace=False), rng.choice(neg, WINDOW - k, replace=False)]
            out.append((f"prior approve={share:.0%}", pool.iloc[idx]))
    high = pool["credit_history"].quantile(0.75)
    for _ in range(per_shift):
        frame = pool.iloc[rng.choice(len(pool), WINDOW, replace=False)].copy()
        flip = (frame["credit_history"] > high) & (rng.random(len(frame)) < 0.5)
        frame.loc[flip, TARGET] = np.where(frame.loc[flip, TARGET] == POSITIVE, "reject", POSITIVE)
        out.append(("concept (labels flipped)", frame))
    return out


def realized(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, pos: int) -> dict[str, float]:
    from experiments.ml.metrics import fast_classification_metrics

    return fast_classification_metrics(y, pred, proba, 2, positive=pos)


def nannyml_run(reference: pd.DataFrame, analysis: pd.DataFrame, chunk: int) -> tuple[dict | None, str]:
    """NannyML's CBPE in its own venv on the same rows; (per chunk results, or None and why)."""
    py = NANNYML_VENV / "bin" / "python"
    if not py.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(NANNYML_VENV)], check=True)
            # NannyML 0.13.1 imports statsmodels without declaring it.
            subprocess.run([str(py), "-m", "pip", "install", "-q", "nannyml", "statsmodels"], check=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            return None, f"pip install nannyml failed: {exc}"
    script = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd, nannyml as nml
ref = pd.read_csv(sys.argv[1]); ana = pd.read_csv(sys.argv[2]); chunk = int(sys.argv[3])
est = nml.CBPE(problem_type="classification_binary", y_pred_proba="proba", y_pred="pred", y_true="y",
               metrics=["accuracy", "f1", "roc_auc"], chunk_size=chunk)
est.fit(ref)
res = est.estimate(ana).filter(period="analysis").to_df()
out = {}
for m in ["accuracy", "f1", "roc_auc"]:
    out[m] = {"value": res[(m, "value")].tolist(), "low": res[(m, "sampling_error")].tolist()}
print(json.dumps({"version": nml.__version__, "metrics": out}))
"""
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, ana_path = Path(tmp) / "ref.csv", Path(tmp) / "ana.csv"
        reference.to_csv(ref_path, index=False)
        analysis.to_csv(ana_path, index=False)
        proc = subprocess.run(
            [str(py), "-c", script, str(ref_path), str(ana_path), str(chunk)], capture_output=True, text=True
        )
    if proc.returncode != 0:
        return None, "NannyML failed: " + proc.stderr.strip().splitlines()[-1][:300]
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def run(per_shift: int, skip_nannyml: bool, algorithm: str) -> dict:
    from deployments.ml.estimation import confidences_for_estimate, estimate_classification
    from experiments.ml.calibration import calibration_assess

    pool = loan_pool(60_000, seed=11)
    train, held, prod = pool.iloc[:6000], pool.iloc[6000:9000], pool.iloc[9000:].reset_index(drop=True)
    model = fit(train, algorithm)
    classes = list(model.classes_)
    pos = classes.index(POSITIVE)

    def score(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proba = model.predict_proba(frame[NUMERIC + CATEGORICAL])
        pred = proba.argmax(axis=1)
        y = np.array([classes.index(v) for v in frame[TARGET]])
        return y, pred, proba

    y_held, pred_held, proba_held = score(held)
    calibration = calibration_assess(proba_held, y_held, source="held-out")
    rng = np.random.default_rng(3)
    rows, analysis = [], []
    t0 = time.perf_counter()
    for shift, frame in windows(prod, per_shift, rng):
        y, pred, proba = score(frame)
        est = estimate_classification(confidences_for_estimate(proba, calibration), pred, positive=pos, n_sim=300)
        real = realized(y, pred, proba, pos)
        rows.append({"shift": shift, "est": est, "real": real})
        analysis.append(pd.DataFrame({"proba": proba[:, pos], "pred": (pred == pos).astype(int), "y": (y == pos)}))
    seconds = (time.perf_counter() - t0) / len(rows)
    result: dict = {
        "algorithm": algorithm,
        "window": WINDOW,
        "windows_per_shift": per_shift,
        "calibration": calibration,
        "seconds_per_window": seconds,
        "platform": summarize(rows, lambda r, m: (r["est"][m]["value"], r["est"][m]["ci_low"], r["est"][m]["ci_high"])),
    }
    if not skip_nannyml:
        reference = pd.DataFrame(
            {"proba": proba_held[:, pos], "pred": (pred_held == pos).astype(int), "y": y_held == pos}
        )
        reference["y"] = reference["y"].astype(int)
        frame = pd.concat(analysis, ignore_index=True)
        frame["y"] = frame["y"].astype(int)
        nml, why = nannyml_run(reference, frame.drop(columns=["y"]), WINDOW)
        if nml is None:
            result["nannyml"] = {"error": why}
        else:
            for i, r in enumerate(rows):
                r["nml"] = {
                    m: (
                        nml["metrics"][m]["value"][i],
                        nml["metrics"][m]["value"][i] - 3 * nml["metrics"][m]["low"][i],
                        nml["metrics"][m]["value"][i] + 3 * nml["metrics"][m]["low"][i],
                    )
                    for m in METRICS
                }
            result["nannyml"] = {"version": nml["version"], **summarize(rows, lambda r, m: r["nml"][m])}
    return result


def summarize(rows: list[dict], get) -> dict:
    out: dict = {}
    for shift in dict.fromkeys(r["shift"] for r in rows):
        group = [r for r in rows if r["shift"] == shift]
        out[shift] = {}
        for m in METRICS:
            hits, errors = [], []
            for r in group:
                value, low, high = get(r, m)
                truth = r["real"][m]
                if value is None or truth is None or low is None:
                    continue
                hits.append(low <= truth <= high)
                errors.append(abs(value - truth))
            out[shift][m] = {
                "coverage": float(np.mean(hits)) if hits else None,
                "mae": float(np.mean(errors)) if errors else None,
                "realized_mean": float(np.mean([r["real"][m] for r in group if r["real"][m] is not None])),
            }
    return out


def print_table(result: dict) -> None:
    cal = result["calibration"]
    print(
        f"\n{result['algorithm']}: calibration {cal['status']} (ECE {cal.get('ece', float('nan')):.3f}, "
        f"p {cal.get('p_value', float('nan')):.3f}; recalibration {cal.get('recalibration')}, raw "
        f"{(cal.get('raw') or {}).get('ece', float('nan')):.3f}); {result['windows_per_shift']} windows of {result['window']} "
        f"rows per shift; {result['seconds_per_window'] * 1000:.0f} ms per estimate"
    )
    nml = result.get("nannyml") or {}
    print(f"{'shift':28} {'metric':9} {'realized':>8} {'ours cov':>9} {'ours MAE':>9} {'NML cov':>8} {'NML MAE':>8}")
    for shift, per in result["platform"].items():
        for m, s in per.items():
            n = (nml.get(shift) or {}).get(m) or {}
            cov = f"{n['coverage']:.0%}" if n.get("coverage") is not None else "-"
            mae = f"{n['mae']:.3f}" if n.get("mae") is not None else "-"
            print(f"{shift:28} {m:9} {s['realized_mean']:8.3f} {s['coverage']:9.0%} {s['mae']:9.3f} {cov:>8} {mae:>8}")
    if "error" in nml:
        print("NannyML:", nml["error"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-nannyml", action="store_true")
    parser.add_argument("--algorithm", choices=["hist_gradient_boosting", "logistic", "both"], default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    per_shift = 20 if args.quick else 60
    algorithms = ["logistic", "hist_gradient_boosting"] if args.algorithm == "both" else [args.algorithm]
    results = [run(per_shift, args.skip_nannyml, a) for a in algorithms]
    for r in results:
        print_table(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
