"""Test-run environment defaults, for a bare `pytest` (the Makefile sets the same).

pytest-django may import the settings before this file runs: the Makefile is the source of
truth, these are the fallback."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-4f9c2a7b1e")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mlplatform")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("HTTPS", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("JOB_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("JOB_STALE_AFTER_SECONDS", "4")
os.environ.setdefault("DIAGNOSTIC_CRASH_JOBS", "1")
os.environ.setdefault("JOB_REQUEUE_AFTER_SECONDS", "5")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
os.environ.setdefault("MLPLATFORM_DATA_DIR", tempfile.mkdtemp(prefix="mlplatform-test-"))
# Playwright's sync API runs an event loop in the test thread; the ORM calls made by test code
# around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
