"""Object storage over the S3 API: a real moto server for the session, a bucket per test."""

from __future__ import annotations

import os

import pytest

from tests.objectstore import CREDENTIALS, MotoServer, storage_config


@pytest.fixture(scope="session")
def s3_server():
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings):
    """default_storage on a fresh bucket of the moto server for this test (and its in-thread
    worker and live server, which share the process's settings)."""
    from mlplatform import netguard

    bucket = s3_server.create_bucket()
    settings.STORAGES = {**settings.STORAGES, "default": storage_config(s3_server, bucket)}
    netguard._own_cache = None  # the endpoint joins the platform's own services
    yield bucket
    netguard._own_cache = None
