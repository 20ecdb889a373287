"""Settings the README documents do what it says: API_KEY_RATE is the default budget of a new
deployment key; EXPERIMENT_PARALLEL_TRIALS and EXPERIMENT_BOOTSTRAP_SAMPLES are read; bad values
stop the process naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from mlplatform.env import env_rate_per_minute

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "from django.conf import settings; "
    "print(settings.API_KEY_RATE_PER_MINUTE, settings.EXPERIMENT_PARALLEL_TRIALS, settings.EXPERIMENT_BOOTSTRAP_SAMPLES)"
)


def _shell(**env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_environment_sets_the_key_rate_and_the_experiment_settings():
    result = _shell(API_KEY_RATE="20/s", EXPERIMENT_PARALLEL_TRIALS="2", EXPERIMENT_BOOTSTRAP_SAMPLES="250")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["1200", "2", "250"]


def test_a_bad_rate_stops_the_process_naming_the_variable():
    result = _shell(API_KEY_RATE="lots")
    assert result.returncode != 0 and "API_KEY_RATE must be a rate" in result.stderr


@pytest.mark.parametrize(("value", "per_minute"), [("600/min", 600), ("10/s", 600), ("36000/hour", 600)])
def test_rates_are_read_per_minute(value, per_minute):
    assert env_rate_per_minute("API_KEY_RATE", value) == per_minute


@pytest.mark.django_db
def test_a_new_key_gets_the_installation_default_rate(team):
    from deployments.rollout.services import deployment_create
    from deployments.serving.services import api_key_create
    from tests.deployments.conftest import make_evaluated_run, register_prepared

    team.project.decision = "go"
    team.project.save()
    version = register_prepared(make_evaluated_run(team.project, team.owner), team.owner)
    deployment = deployment_create(project=team.project, actor=team.editor, name="d", model_version=version)
    with override_settings(API_KEY_RATE_PER_MINUTE=120):
        default, _ = api_key_create(deployment=deployment, actor=team.editor, name="app")
        chosen, _ = api_key_create(deployment=deployment, actor=team.editor, name="batch", rate_per_minute=30)
    assert default.rate_per_minute == 120 and chosen.rate_per_minute == 30
