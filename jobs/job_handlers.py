"""Diagnostic jobs: check that workers run, report progress and survive faults.

`diagnostics.sleep` is harmless (sleeps with progress) and lets an operator check the queue.
`diagnostics.exit` kills its own worker process, to prove a poison job is dead-lettered; it
exists only when DIAGNOSTIC_CRASH_JOBS is on (the test suite), never in production.
"""

from __future__ import annotations

import os
import time

from django.conf import settings

from jobs import webhooks  # noqa: F401  (registers webhook.deliver)
from jobs.models import Job
from jobs.runner import JobContext, job_handler


@job_handler("diagnostics.sleep")
def sleep_job(job: Job, ctx: JobContext) -> dict:
    seconds = float(job.params.get("seconds", 1))
    steps = max(1, int(seconds * 5))
    for i in range(steps):
        time.sleep(seconds / steps)
        ctx.progress(100 * (i + 1) / steps, f"Slept {seconds * (i + 1) / steps:.1f}s of {seconds:.1f}s", log=False)
    if job.params.get("fail"):
        raise ValueError(job.params["fail"])
    return {"slept": seconds, "attempt": job.attempts, "pid": os.getpid()}


if getattr(settings, "DIAGNOSTIC_CRASH_JOBS", False):

    @job_handler("diagnostics.exit")
    def exit_job(job: Job, ctx: JobContext) -> dict:
        import billiard.process

        ctx.progress(10, "About to die")
        if billiard.process.current_process().name == "MainProcess":
            # Never take down a process that is not a disposable pool child (a solo or
            # in-thread worker runs inside its host process).
            raise RuntimeError("diagnostics.exit only runs in a prefork pool child")
        os._exit(137)  # what the OOM killer does to a worker child
