"""The newcomer path: after `make demo` any management command of the checkout works; the test
command brings Chromium or says how; neither can weaken a configured installation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "HTTPS", "STATIC_MANIFEST")


def _manage(data_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG}
    env.update({"MLPLATFORM_DATA_DIR": str(data_dir), **extra})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


SHOW = "from django.conf import settings; print('DEBUG', settings.DEBUG, 'HOSTS', settings.ALLOWED_HOSTS)"


def test_management_commands_use_the_demo_settings_after_make_demo(tmp_path):
    without = _manage(tmp_path, "check")
    assert without.returncode != 0 and "SECRET_KEY must be set" in without.stderr
    (tmp_path / "demo.env").write_text("DEBUG=1\n")  # what `make demo` leaves (after migrating)
    assert _manage(tmp_path, "migrate", "-v0").returncode == 0
    result = _manage(
        tmp_path,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "a@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-password-9382",
    )
    assert result.returncode == 0, result.stderr
    assert "Superuser created" in result.stdout


def test_the_demo_file_never_weakens_a_configured_installation(tmp_path):
    # Only DEBUG is read, and only when the environment configures nothing: a hostile or stale
    # file can neither turn DEBUG on next to a real secret nor set other keys.
    (tmp_path / "demo.env").write_text("DEBUG=1\nALLOWED_HOSTS=*\nSECRET_KEY=from-the-file-0123456789\n")
    production = _manage(tmp_path, "shell", "-c", SHOW, SECRET_KEY="k" * 50, ALLOWED_HOSTS="ml.example.com")
    assert production.returncode == 0, production.stderr
    assert "DEBUG False" in production.stdout and "'*'" not in production.stdout
    missing_secret = _manage(tmp_path, "check", DATABASE_URL="postgres://u@db.example:5432/x")
    assert missing_secret.returncode != 0 and "SECRET_KEY must be set" in missing_secret.stderr
    bare = _manage(tmp_path, "shell", "-c", SHOW)
    assert "DEBUG True" in bare.stdout and "'*'" not in bare.stdout


def test_make_demo_writes_the_file_it_documents():
    makefile = (ROOT / "Makefile").read_text()
    assert "printf 'DEBUG=1\\n' > \"$(DATA_DIR)/demo.env\"" in makefile
    assert "test: $(VENV)/.installed services chromium lint" in makefile


def test_missing_chromium_is_reported_with_the_command_that_installs_it(tmp_path):
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "chromium.sh")],
        env={"PATH": str(tmp_path), "CHROMIUM": str(tmp_path / "nope"), "CHROMIUM_NO_INSTALL": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "apt-get install -y chromium" in result.stderr


def test_present_chromium_is_accepted_without_installing(tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "chromium.sh")],
        env={"PATH": str(tmp_path), "CHROMIUM": str(fake)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stdout == ""
