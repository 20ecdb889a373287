import pytest

pytestmark = pytest.mark.django_db


def test_world_builds_every_kind(world):
    for name in (
        "dataset",
        "dataset_version",
        "experiment",
        "run",
        "model_version",
        "deployment",
        "prediction",
        "review",
        "alert",
        "job",
    ):
        assert world[name].project_id == world.project.pk
    assert world["dataset_version"].split["counts"]["test"] > 0
