"""The prediction log's hand-off: the predict API pushes rows to Redis, drainers write them to PostgreSQL.

Writing the log inside the request costs a transaction per call (BEGIN, INSERT, COMMIT: about a
third of the platform's own time per request). Instead the API appends each row, already encoded
as JSON, to a Redis list (one RPUSH) and answers; drainers move the rows into PostgreSQL in
batches of up to BATCH rows with one `INSERT ... SELECT FROM jsonb_to_recordset(...)`.

No row is lost:
- a drainer *claims* a batch atomically (a Lua script moves it from the queue to a claim list of
  its own and stamps the claim's time), inserts it, commits, and only then deletes the claim;
- a drainer that dies between claim and delete leaves the claim behind: any drainer re-inserts
  claims older than CLAIM_TIMEOUT seconds. Inserting twice is harmless: the row ids were made
  by the request, and the insert skips ids already there (ON CONFLICT DO NOTHING);
- when Redis refuses the push, the request writes its rows to PostgreSQL itself (`push` says so);
- a row PostgreSQL refuses (a deployment deleted meanwhile) is dropped alone, with a warning,
  never the batch around it;
- a Redis restart that loses the queue (no persistence) loses nothing either: each process keeps
  a copy of what it queued until its drainer has seen the queue emptied after the push, and
  writes those copies itself when Redis comes back with another run_id. Only a web process dying
  in the same fraction of a second as Redis loses its data could lose rows: run Redis with
  `appendonly yes` in production (README), as for the Celery queue.

Who drains: a daemon thread in every process that pushed (started on the first push, every
PREDICTION_LOG_FLUSH_MS, and once more at exit), the beat task (every 30 s: claims left by dead
processes), and readers that need the newest rows (feedback on an id not yet written,
monitoring snapshots) call `flush()` first.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from django.conf import settings
from django.db import DataError, IntegrityError, close_old_connections, connection, transaction

from deployments import prediction_store
from deployments.models import LATER_COLUMNS, LOGGED_COLUMNS, LOGGED_NAMES, Prediction, PredictionStatus
from mlplatform import redis as platform_redis
from mlplatform.concurrency import call_in_thread

logger = logging.getLogger(__name__)

# One hash tag for every serving key (queue, claims, rate counters, generation): they live in
# one slot, so the Lua scripts also run on Redis Cluster.
QUEUE = "{mlp}:predlog:queue"
CLAIMS = "{mlp}:predlog:claims"
CLAIM_PREFIX = "{mlp}:predlog:claim:"
BATCH = 1000
CLAIM_TIMEOUT = 60.0

# Atomically: take up to ARGV[1] rows off the head of the queue into a claim list, stamp the claim.
_CLAIM_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('RPUSH', KEYS[2], unpack(items))
redis.call('LTRIM', KEYS[1], #items, -1)
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return items
"""


def _insert_sql(returning: bool = False) -> str:
    """INSERT ... SELECT FROM jsonb_to_recordset: the queued rows typed by the logged columns; the
    columns filled later get their empty values; an id already there is skipped. `returning`: the
    ids really inserted (the columnar store writes those rows' features, no others)."""
    record = ", ".join(f"{name} {sql_type}" for name, sql_type in LOGGED_COLUMNS)
    # A missing probability map is SQL NULL, as the ORM writes it, not the jsonb value 'null'.
    selected = ", ".join(
        "NULLIF(probabilities, 'null'::jsonb)"
        if n == "probabilities"
        else "NULLIF(inputs, 'null'::jsonb)"
        if n == "inputs"
        else n
        for n in LOGGED_NAMES
    )
    later = ", ".join("''" if value == "" else "NULL" for value in LATER_COLUMNS.values())
    return (
        f"INSERT INTO {{table}} ({', '.join(LOGGED_NAMES)}, {', '.join(LATER_COLUMNS)}) "
        f"SELECT {selected}, {later} FROM jsonb_to_recordset(%s::jsonb) AS t({record}) ON CONFLICT (id) DO NOTHING"
        + (" RETURNING id" if returning else "")
    )


_INSERT_SQL = _insert_sql()
_INSERT_RETURNING_SQL = _insert_sql(returning=True)


def enabled() -> bool:
    """Queue the API's prediction rows (production default), or write them in the request."""
    return bool(settings.PREDICTION_LOG_QUEUE and settings.REDIS_URL) and connection.vendor == "postgresql"


def encode(row: dict[str, Any]) -> str | None:
    """A row as the queue stores it, or None when PostgreSQL's jsonb could not take it."""
    try:
        text = json.dumps(row, separators=(",", ":"), allow_nan=False, default=str)
    except (TypeError, ValueError):
        return None
    return None if "\\u0000" in text else text


def push(encoded: list[str]) -> bool:
    """Append rows to the queue. False when Redis is unreachable: the caller then writes them itself."""
    try:
        platform_redis.client().rpush(QUEUE, *encoded)
    except Exception:  # noqa: BLE001 - any Redis failure means "write it yourself", never a lost row
        logger.warning("prediction log queue unreachable: writing %d row(s) in the request", len(encoded))
        return False
    pushed(encoded)
    return True


def pushed(encoded: list[str]) -> None:
    """Rows this process just queued: keep a copy until they are known to be claimed (see `_retained`)."""
    drainer_ensure()
    with _retained_lock:
        _retained.append((time.monotonic(), encoded))
        while len(_retained) > RETAIN_MAX_CALLS:
            _retained.popleft()


# A Redis that restarts without persistence forgets the rows not yet drained. Each process keeps
# what it queued until its drainer has seen the queue emptied after the push (the rows are then
# committed or in a live drainer's hands), and writes those copies itself when it finds Redis
# restarted (another run_id). Inserting twice is harmless. Bounded: RETAIN_MAX_CALLS calls.
RETAIN_MAX_CALLS = 100_000
_retained: deque[tuple[float, list[str]]] = deque()
_retained_lock = threading.Lock()
_run_id: str | None = None


# --- draining ------------------------------------------------------------------------------------


def _insert(items: list[bytes | str]) -> int:
    """Insert queued rows, skipping ids already there. Returns the rows inserted.

    With the columnar store on, the features of the rows inserted (except those held for review,
    whose reviewers read them from PostgreSQL) go to a Parquet segment written inside the same
    transaction, and their `inputs` stay NULL (deployments/prediction_store.py)."""
    if not items:
        return 0
    raw = [i if isinstance(i, bytes) else i.encode() for i in items]
    columnar = prediction_store.enabled()
    if columnar:
        rows = [json.loads(r) for r in raw]
        held = [r for r in rows if r.get("status") == PredictionStatus.PENDING_REVIEW]
        payload = json.dumps(
            [r | {"inputs": None} if r.get("status") != PredictionStatus.PENDING_REVIEW else r for r in rows],
            separators=(",", ":"),
        )
        sql = _INSERT_RETURNING_SQL.format(table=Prediction._meta.db_table)
    else:
        payload = (b"[" + b",".join(raw) + b"]").decode()  # one decode for the batch
        sql = _INSERT_SQL.format(table=Prediction._meta.db_table)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [payload])
            if not columnar:
                return cursor.rowcount
            inserted = {str(r[0]) for r in cursor.fetchall()}
            held_ids = {str(r["id"]) for r in held}
            prediction_store.rows_write([r for r in rows if str(r["id"]) in inserted and str(r["id"]) not in held_ids])
            return len(inserted)
    except (IntegrityError, DataError) as exc:
        # A row-level refusal. Anything else (PostgreSQL away) propagates: the claim stays and
        # is re-inserted later, nothing is dropped.
        if len(items) == 1:
            logger.warning("prediction log: dropped a row PostgreSQL refuses (%s): %.300s", exc, payload)
            return 0
    # One bad row (a deployment deleted since) must not hold back the others: halve until found.
    mid = len(items) // 2
    return _insert(items[:mid]) + _insert(items[mid:])


def _claim(client, n: int) -> tuple[str, list[bytes]]:
    claim_key = f"{CLAIM_PREFIX}{uuid.uuid4().hex}"
    items = client.eval(_CLAIM_LUA, 3, QUEUE, claim_key, CLAIMS, n, time.time())
    return claim_key, items


def _release(client, claim_key: str) -> None:
    pipe = client.pipeline()
    pipe.delete(claim_key)
    pipe.zrem(CLAIMS, claim_key)
    pipe.execute()


def recover(older_than: float = CLAIM_TIMEOUT) -> int:
    """Re-insert the claims of drainers that died before finishing. Returns the rows inserted."""
    client = platform_redis.client()
    inserted = 0
    for raw in client.zrangebyscore(CLAIMS, 0, time.time() - older_than):
        claim_key = raw.decode() if isinstance(raw, bytes) else raw
        items = client.lrange(claim_key, 0, -1)
        inserted += _insert(items)
        _release(client, claim_key)
    return inserted


def drain(max_batches: int = 1_000_000) -> int:
    """Move queued rows into PostgreSQL until the queue is empty (or max_batches). Returns rows inserted."""
    client = platform_redis.client()
    inserted = 0
    for _ in range(max_batches):
        claim_key, items = _claim(client, BATCH)
        if not items:
            break
        inserted += _insert(items)
        _release(client, claim_key)
        if len(items) < BATCH:
            break
    return inserted


def flush() -> int:
    """Drain now, so that what follows reads every prediction answered so far.

    Inside a transaction (a request's, a job's) the drain runs on a connection of its own: its
    commit must not depend on the caller's.
    """
    if not enabled():
        return 0
    if not connection.in_atomic_block:
        return _flush_quietly()
    return call_in_thread(_flush_quietly, name="prediction-log-flush", timeout=30, default=0, on_exit=connection.close)


def _flush_quietly(wait: float = 2.0) -> int:
    """Drain, then wait (a little) for the batches other drainers held meanwhile to commit
    (only those: under load new claims keep coming, and they hold no row answered before)."""
    try:
        client = platform_redis.client()
        inserted = recover() + drain()
        in_flight = client.zrangebyscore(CLAIMS, time.time() - CLAIM_TIMEOUT, "+inf")
        deadline = time.monotonic() + wait
        while in_flight and time.monotonic() < deadline and client.exists(*in_flight):
            time.sleep(0.005)
        return inserted
    except Exception:  # a reader still answers; the rows stay queued for the next drain
        logger.warning("prediction log: flush failed", exc_info=True)
        return 0


def pending() -> int:
    """Rows queued or claimed and not yet in PostgreSQL (for health and the tests)."""
    client = platform_redis.client()
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE)
    for raw in client.zrange(CLAIMS, 0, -1):
        pipe.llen(raw)
    return int(sum(pipe.execute()))


# --- the drainer thread ------------------------------------------------------------------------------

_drainer_pid: int | None = None
_drainer_lock = threading.Lock()
_stop = threading.Event()


def drainer_ensure() -> None:
    """Start this process's drainer thread once (again after a fork: threads do not survive one)."""
    global _drainer_pid, _run_id
    if _drainer_pid == os.getpid():
        return
    with _drainer_lock:
        if _drainer_pid == os.getpid():
            return
        _drainer_pid = os.getpid()
        _stop.clear()
        try:  # the Redis run this process queues into: another one later means it restarted
            _run_id = platform_redis.client().info("server").get("run_id")
        except Exception:  # noqa: BLE001 - the drainer's first round reads it
            _run_id = None
        threading.Thread(target=_drainer_loop, name="prediction-log-drainer", daemon=True).start()
        atexit.register(_drain_at_exit)


def _release_retained(before: float) -> None:
    with _retained_lock:
        while _retained and _retained[0][0] < before:
            _retained.popleft()


def _check_restart() -> int:
    """Write this process's retained rows itself when Redis restarted since it queued them."""
    global _run_id
    run_id = platform_redis.client().info("server").get("run_id")
    if _run_id is None or run_id == _run_id:
        _run_id = run_id
        return 0
    with _retained_lock:
        snapshot = list(_retained)
    rows = [row for _, encoded in snapshot for row in encoded]
    logger.warning("prediction log: Redis restarted; writing the %d row(s) it may have lost", len(rows))
    inserted = sum(_insert(rows[i : i + BATCH]) for i in range(0, len(rows), BATCH))  # raises: retried next time
    _run_id = run_id
    _release_retained(snapshot[-1][0] + 1e-9 if snapshot else 0.0)
    return inserted


def _drainer_loop() -> None:
    interval = settings.PREDICTION_LOG_FLUSH_MS / 1000
    last_recover = 0.0
    while not _stop.wait(interval):
        try:
            close_old_connections()
            moved = _check_restart()
            # Every row queued before `emptied` has been claimed once drain() returns.
            emptied = time.monotonic()
            moved += drain()
            _release_retained(emptied)
            if time.monotonic() - last_recover > CLAIM_TIMEOUT / 2:
                last_recover = time.monotonic()
                moved += recover()
            if not moved:
                connection.close()  # idle: hold no database connection
        except Exception:  # PostgreSQL or Redis away: the rows wait in the queue
            logger.warning("prediction log drainer: will retry", exc_info=True)
            connection.close()


def _drain_at_exit() -> None:
    if _drainer_pid != os.getpid():
        return
    _stop.set()
    _flush_quietly(wait=0)
