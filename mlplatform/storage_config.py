"""Where stored files go: the local disk (the embedded default) or a bucket over the S3 API.

Every file of the platform (uploads, dataset versions, model files, batch inputs and outputs,
the columnar prediction store) goes through Django's `default_storage`, so this one setting
moves them all. `STORAGE_BACKEND`:

- unset or `local`: files under `MEDIA_ROOT` (default `MLPLATFORM_DATA_DIR/media`);
- `s3`: django-storages' S3 backend on `S3_BUCKET` (`S3_ENDPOINT_URL` for MinIO, Ceph, R2 or
  any S3-compatible server; `S3_REGION`; `S3_PREFIX` to share a bucket). Credentials come from
  boto3's standard chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, a profile, an instance
  role), never from the repository or these settings. Objects are private and never linked:
  every download streams through the platform's views and their access checks;
- any dotted storage class (`storages.backends.s3.S3Storage`, ...): used as given with
  `STORAGE_OPTIONS` (JSON), as before.

`STORAGE_OPTIONS` (JSON) is merged over the `s3` shortcut's options for anything else
django-storages accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from mlplatform.env import env_json, env_str

S3_BACKEND = "storages.backends.s3.S3Storage"
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"

# A download is buffered in memory up to this size, then in a temporary file: a multi-GB
# dataset version never sits whole in a worker's memory.
S3_MAX_MEMORY_BYTES = 64 * 1024 * 1024


def s3_options() -> dict[str, Any]:
    bucket = (env_str("S3_BUCKET") or "").strip()
    if not bucket:
        raise ImproperlyConfigured("S3_BUCKET must be set when STORAGE_BACKEND=s3")
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "location": (env_str("S3_PREFIX") or "").strip("/"),
        # Private objects, and no URL is ever handed out (nothing calls storage.url()): a bucket
        # made public by mistake elsewhere still gets no link from us.
        "default_acl": "private",
        "querystring_auth": True,
        # Like the local disk: a name that exists gets a new one instead of being overwritten.
        "file_overwrite": False,
        "max_memory_size": S3_MAX_MEMORY_BYTES,
    }
    endpoint = (env_str("S3_ENDPOINT_URL") or "").strip()
    if endpoint:
        options["endpoint_url"] = endpoint
    region = (env_str("S3_REGION") or "").strip()
    if region:
        options["region_name"] = region
    return options


def default_storage_config(data_dir: Path) -> dict[str, Any]:
    """The `STORAGES["default"]` entry for this environment."""
    backend = (env_str("STORAGE_BACKEND") or "local").strip()
    extra = env_json("STORAGE_OPTIONS", None)
    if extra is not None and not isinstance(extra, dict):
        raise ImproperlyConfigured("STORAGE_OPTIONS must be a JSON object")
    if backend == "s3":
        options = s3_options()
        for secret in ("access_key", "secret_key", "security_token", "session_token"):
            if secret in (extra or {}):
                raise ImproperlyConfigured(
                    f"STORAGE_OPTIONS must not hold {secret}: credentials come from AWS_ACCESS_KEY_ID "
                    "and AWS_SECRET_ACCESS_KEY (or a profile or instance role)"
                )
        return {"BACKEND": S3_BACKEND, "OPTIONS": {**options, **(extra or {})}}
    if backend == "local":
        backend = LOCAL_BACKEND
    if "." not in backend:
        raise ImproperlyConfigured(f"STORAGE_BACKEND must be local, s3 or a dotted storage class, got {backend!r}")
    if extra is None and backend == LOCAL_BACKEND:
        extra = {"location": str(Path(env_str("MEDIA_ROOT") or data_dir / "media"))}
    return {"BACKEND": backend, "OPTIONS": extra or {}}
