"""Schemathesis against the live schema, once per role's token: no 5xx, no response that breaks
the schema. Bounded in time (SCHEMATHESIS_SECONDS per role) so CI stays fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.services import token_create
from tests.security.world import build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SECONDS = os.environ.get("SCHEMATHESIS_SECONDS", "25")


@pytest.mark.parametrize("role", ["owner", "editor", "reviewer", "viewer"])
def test_fuzz_api_as(role, team, live_server, tmp_path):
    build_world(team.project, team.owner)
    _, key = token_create(user=team.user(role))
    report = tmp_path / "report"
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{live_server.url}/api/v1/schema/",
        "--url",
        f"{live_server.url}/api/v1",
        "-H",
        f"Authorization: Token {key}",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "6",
        "--max-time",
        SECONDS,
        "--seed",
        "7",
        "--request-timeout",
        "20",
        "--exclude-path-regex",
        "/(schema|docs)/",
        "--warnings",
        "off",
        "--no-shrink",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=int(SECONDS) + 240)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    tested = int(output.split("Tested:")[1].split()[0])
    assert tested >= 10, output  # the schema was really exercised
