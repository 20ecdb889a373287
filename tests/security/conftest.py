import pytest

from tests.security.world import build_world


@pytest.fixture
def world(team):
    return build_world(team.project, team.owner)
