"""Production settings: strict environment, deploy checks clean, no secret in the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "HTTPS", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE", "STATIC_MANIFEST"}
    }
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_requires_secret_key():
    result = _run({"DEBUG": "0"}, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_bad_boolean_is_refused():
    result = _run({"DEBUG": "perhaps", "SECRET_KEY": "x" * 60}, "check")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = _run(
        {"DEBUG": "0", "SECRET_KEY": "k9-" + "Zq4vT8mX2pL7wN3rB6yH1jF5dS0gK" * 2, "ALLOWED_HOSTS": "ml.example.com"},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_no_secret_in_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    pattern = re.compile(
        r"(SECRET_KEY\s*=\s*['\"][^'\"]{20,}['\"])|(-----BEGIN (RSA |EC )?PRIVATE KEY-----)|(AKIA[0-9A-Z]{16})"
    )
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".parquet", ".skops"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        for match in pattern.finditer(text):
            offenders.append(f"{name}: {match.group(0)[:40]}")
    assert not offenders, offenders
