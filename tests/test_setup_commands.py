"""The README's set-up: the embedded default runs with no configuration at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "CELERY_BROKER_URL",
            "ALLOWED_HOSTS",
            "HTTPS",
            "STATIC_MANIFEST",
        }
    }
    env.update({"DEBUG": "1", "MLPLATFORM_DATA_DIR": str(tmp_path)})
    return env


def test_demo_seeds_on_embedded_default(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "log in   demo / " in result.stdout
    assert (tmp_path / "mlplatform.sqlite3").exists()
    # idempotent: a second run keeps the same project
    again = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("project  ")[1].split()[0] == result.stdout.split("project  ")[1].split()[0]


@pytest.mark.slow
def test_demo_serves_web_and_runs_jobs_on_embedded_broker(tmp_path):
    port = 18000 + os.getpid() % 1000
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz/", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the demo web server did not come up")
        password = (tmp_path / "demo_password").read_text().strip()
        request = urllib.request.Request(
            f"{base}/api/v1/auth/token/",
            method="POST",
            data=json.dumps({"username": "demo", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            token = json.loads(resp.read())["token"]
        # a real job through the embedded broker and the demo's worker process
        env = _clean_env(tmp_path)
        code = (
            "from django.db import transaction\n"
            "from jobs.runner import job_enqueue\nfrom projects.models import Project\n"
            "with transaction.atomic():\n"
            "    j = job_enqueue(project=Project.objects.first(), kind='diagnostics.sleep', params={'seconds': 0.2})\n"
            "print(j.pk)\n"
        )
        job_id = (
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", code],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            req = urllib.request.Request(f"{base}/api/v1/jobs/{job_id}/", headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                status = json.loads(resp.read())["status"]
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert status == "succeeded"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
