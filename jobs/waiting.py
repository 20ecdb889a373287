"""Waiting for a job without busy polling: a long poll (`?wait=N`) and server-sent events.

Both hold a web thread while they wait, so:
- the wait is capped (`JOB_WAIT_MAX_SECONDS`, 60 s by default); a client asks again;
- the loop repeats one cheap read (`jobs.selectors.job_state`: two indexed queries), every
  0.2 s at first and then at most every second, so a short job answers quickly and a long one
  costs about one query pair per second per waiter;
- at most `JOB_WAIT_SLOTS` waits run at once in a web process; a wait beyond that answers
  within a second, so waiting clients can never take every thread from predict calls.

Why not Redis pub/sub: it would wake a waiter a few hundred ms sooner but needs a publish on
every progress write and child completion, and the thread is held just the same. The poll
keeps the job row the only source of truth. Run gunicorn with threads (`-k gthread
--threads 8`): with sync workers every waiting client holds a whole process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings

from jobs.models import TERMINAL
from jobs.selectors import job_state

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(settings.JOB_WAIT_SLOTS)
        return _slots


def wait_cap() -> float:
    return float(settings.JOB_WAIT_MAX_SECONDS)


def _poll(job_id: int, seconds: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + seconds
    interval = 0.2
    state = job_state(job_id)
    while state is not None and state["status"] not in TERMINAL:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
        interval = min(1.0, interval * 1.5)
        state = job_state(job_id)
    return state


def job_wait(job_id: int, seconds: float) -> None:
    """Return once the job (children included) is terminal, or after `seconds` (capped)."""
    seconds = max(0.0, min(seconds, wait_cap()))
    if seconds <= 0:
        return
    slots = _semaphore()
    if not slots.acquire(blocking=False):
        seconds = min(seconds, 1.0)  # every slot busy: a short wait, the client asks again
        _poll(job_id, seconds)
        return
    try:
        _poll(job_id, seconds)
    finally:
        slots.release()


def _event(name: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def job_events(job_id: int) -> Iterator[str]:
    """Server-sent events: `progress` on every change, `end` at a terminal state. The stream
    closes after the wait cap with `retry:` so an EventSource reconnects by itself."""
    slots = _semaphore()
    acquired = slots.acquire(blocking=False)
    seconds = wait_cap() if acquired else 1.0
    try:
        yield "retry: 1000\n\n"
        last: tuple | None = None
        counter = 0

        def emit(state: dict[str, Any]) -> str | None:
            nonlocal last, counter
            key = (state["status"], state["progress"], state["message"])
            if key == last:
                return None
            last = key
            counter += 1
            return _event("progress", state, counter)

        deadline = time.monotonic() + seconds
        interval = 0.2
        keepalive = time.monotonic() + 15
        while True:
            state = job_state(job_id)
            if state is None:
                yield _event("error", {"detail": "Not found."})
                return
            chunk = emit(state)
            if chunk:
                yield chunk
            if state["status"] in TERMINAL:
                yield _event("end", state, counter + 1)
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= keepalive:
                yield ": keep-alive\n\n"
                keepalive = now + 15
            time.sleep(min(interval, deadline - now))
            interval = min(1.0, interval * 1.5)
    finally:
        if acquired:
            slots.release()
