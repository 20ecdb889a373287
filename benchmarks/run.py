"""Run every benchmark in this folder, one after the other (`make bench`).

Each benchmark is a standalone script printing its figures and ratios measured side by side in
the same run; pass --quick for a shorter run. Timings never go into the unit tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "ingest.py",
    "readback.py",
    "training.py",
    "fanout.py",
    "serving.py",
    "reviews.py",
    "monitoring.py",
    "drift_alarms.py",
    "soak.py",
]


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for name in ORDER:
        script = HERE / name
        if not script.exists():
            continue
        print(f"\n===== {name} =====", flush=True)
        failed += subprocess.call([sys.executable, str(script), *extra], cwd=HERE.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
