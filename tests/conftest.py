"""Shared fixtures: a team with every role, API clients, a real Celery worker, a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import token_create
from tests.factories import PASSWORD, ProjectFactory, UserFactory, add_member

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Team:
    project: Any
    other_project: Any
    owner: Any
    editor: Any
    reviewer: Any
    viewer: Any
    outsider: Any  # owner of other_project, no role in project

    def user(self, role: str):
        return getattr(self, role)


@pytest.fixture
def team(db) -> Team:
    owner = UserFactory(username="olivia")
    project = ProjectFactory(created_by=owner)
    add_member(project, owner, "owner")
    users = {}
    for role, name in (("editor", "eddie"), ("reviewer", "rita"), ("viewer", "victor")):
        users[role] = UserFactory(username=name)
        add_member(project, users[role], role)
    outsider = UserFactory(username="oscar")
    other = ProjectFactory(created_by=outsider, name="Other team's project")
    add_member(other, outsider, "owner")
    return Team(project, other, owner, users["editor"], users["reviewer"], users["viewer"], outsider)


@pytest.fixture(autouse=True)
def _login_counters_forgotten():
    """Failed-login counters live in Redis and outlive a test: every test starts without any."""
    from accounts import throttle

    throttle.forget_all()
    yield


class FakeDNS:
    """Names only this process's resolver knows: `dns["name"] = ["127.0.0.1"]`, or a callable
    returning a list (to answer differently each time). `calls` lists the names looked up."""

    def __init__(self):
        self.names: dict[str, Any] = {}
        self.calls: list[str] = []

    def __setitem__(self, name: str, answers: Any) -> None:
        self.names[name.lower().rstrip(".")] = answers

    def answer(self, name: str) -> list[str] | None:
        key = name.lower().rstrip(".")
        if key not in self.names:
            return None
        self.calls.append(key)
        return self.names[key]() if callable(self.names[key]) else list(self.names[key])


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    """Nothing goes to the network; libpq and libc never see these names, so a connection that
    reaches the right server proves it went to the address we checked (pinning)."""
    import socket

    dns = FakeDNS()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        answers = dns.answer(host.decode() if isinstance(host, bytes) else str(host or ""))
        if answers is None:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port or 0, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
            for a in answers
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def api_client_for(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api(team):
    """api("owner") -> an APIClient authenticated with that team member's token."""
    cache: dict[str, APIClient] = {}

    def get(role: str) -> APIClient:
        if role not in cache:
            cache[role] = api_client_for(team.user(role))
        return cache[role]

    return get


@pytest.fixture(scope="session")
def warehouse_db(django_db_setup, django_db_blocker):
    """A second database on the test server, not the platform's: a customer's warehouse with a
    `sales` table of 80 rows. Reached through an allowlisted name (see `fake_dns`)."""
    import psycopg

    with django_db_blocker.unblock():
        db = dict(connection.settings_dict)
    name = f"{db['NAME']}_warehouse"
    server = {"host": db["HOST"] or "127.0.0.1", "port": int(db["PORT"] or 5432), "user": db["USER"]}
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(**server, dbname=name, autocommit=True) as wh:
        wh.execute("CREATE TABLE sales (id int, amount float, region text)")
        wh.execute(
            "INSERT INTO sales SELECT g, g * 1.5, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END "
            "FROM generate_series(1, 80) g"
        )
    yield {**server, "dbname": name}
    with psycopg.connect(**server, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- jobs and workers --------------------------------------------------------------------------


def wait_for_job(job_id: int, timeout: float = 60.0, statuses=("succeeded", "failed", "cancelled")):
    from jobs.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.1)
    job = Job.objects.get(pk=job_id)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s: {job.message} {job.error}")


def _purge_queues() -> None:
    """Empty our queues, and Redis's unacked set: a message of a worker killed by an earlier
    test stays there, and kombu would hand it back to a later test's worker (naming a job of
    another database)."""
    from mlplatform.celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in ("default", "training", "logging"):
            try:
                channel.queue_purge(queue)
            except Exception:  # noqa: S110 - a queue that does not exist yet has nothing to purge
                pass
        channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@pytest.fixture(scope="session")
def celery_worker_thread(django_db_setup, django_db_blocker):
    """A real Celery worker (solo pool, in a thread) consuming our queues over Redis."""
    from celery.contrib.testing.worker import start_worker

    from mlplatform.celery import app

    _purge_queues()
    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
        queues=["default", "training", "logging"],
    ):
        yield app


@pytest.fixture
def worker(transactional_db, celery_worker_thread):
    """Use in tests whose jobs must run: the worker sees only committed rows.

    At the end the worker is let finish what it holds (a job the test did not wait for, such as a
    batch's logging child still COPYing) before the database is emptied: TRUNCATE against its
    open transactions deadlocks."""
    yield celery_worker_thread
    _worker_idle()


def _worker_idle(timeout: float = 60.0) -> None:
    from celery.worker import state

    deadline = time.monotonic() + timeout
    time.sleep(0.1)  # a task the test's last commit queued may be on its way from Redis
    while (state.active_requests or state.reserved_requests) and time.monotonic() < deadline:
        time.sleep(0.05)


def _die_with_parent() -> None:
    """In the child: own process group, and SIGKILL when the test process dies (even by SIGKILL),
    so a crashed test run never leaves a worker consuming the next run's queues."""
    import ctypes

    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


class WorkerProcess:
    """`celery worker` in a subprocess, on the test database: for SIGKILL tests."""

    def __init__(self, queues: str = "default,training,logging", concurrency: int = 1, extra_env=None):
        db = connection.settings_dict
        env = dict(os.environ)
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        env.update(extra_env or {})
        self.cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mlplatform",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, preexec_fn=_die_with_parent)
        return self

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.fixture
def worker_process(transactional_db):
    _purge_queues()
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        w = WorkerProcess(**kwargs).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop(9)


# --- browser ----------------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    p = context.new_page()
    p.set_default_timeout(15000)
    yield p
    context.close()


def login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshots(page, name: str) -> list[Path]:
    """The page at 1280 and 390 px wide, full length, under var/screenshots/ (to look at)."""
    out = ROOT / "var" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        path = out / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    page.set_viewport_size({"width": 1280, "height": 900})
    return paths
