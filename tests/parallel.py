"""pytest-xdist workers get their own Redis database (loaded with `-p tests.parallel`).

pytest-django gives each worker its own test database (`..._gw0`), and each process has its own
data directory (conftest.py); Redis is the one shared thing left: a worker's Celery queues,
serving caches and login counters would otherwise be read by the other. This runs before
Django's settings are imported, so REDIS_URL is rewritten in the environment: worker `gwN`
uses database base+1+N.
"""

import os
import re

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    _match = re.match(r"^(redis://[^/]+)(?:/(\d+))?$", _url)
    if _match:
        _base = int(_match.group(2) or 0)
        os.environ["REDIS_URL"] = f"{_match.group(1)}/{_base + 1 + int(_worker[2:])}"
