"""What may be shown of a job's params and result, to anyone (API, pages, audit).

A handler declares its secret fields where it is registered (`job_handler(...,
secret_params=..., secret_result=...)`); nothing else decides what is hidden. A job whose kind
this process does not know shows neither params nor result (closed by default).
"""

from __future__ import annotations

from typing import Any

from jobs.models import Job
from jobs.runner import HandlerSpec, get_handler


def _spec(kind: str) -> HandlerSpec | None:
    try:
        return get_handler(kind)
    except KeyError:
        return None


def job_public_params(job: Job) -> dict[str, Any]:
    spec = _spec(job.kind)
    if spec is None:
        return {}
    return {k: v for k, v in (job.params or {}).items() if k not in spec.secret_params}


def job_public_result(job: Job) -> dict[str, Any]:
    spec = _spec(job.kind)
    if spec is None:
        return {}
    return {k: v for k, v in (job.result or {}).items() if k not in spec.secret_result}
