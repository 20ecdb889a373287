"""Random access to stored files: a page of rows reads only its row groups, on disk or in S3.

`default_storage.open()` of django-storages' S3 backend downloads the whole object before the
first byte is read. That is right for a file read from start to end (a model, an upload), and
wasteful for a Parquet file read in parts: a page of 50 rows of a 2 GB version would download
2 GB. `open_ranged` gives a seekable file that fetches only the byte ranges asked for (HTTP
Range requests, through a read buffer), so pyarrow reads the footer and the row groups it
needs. On any other storage it is `default_storage.open()`.
"""

from __future__ import annotations

import io
from typing import IO

from django.core.files.storage import default_storage
from django.utils.functional import empty

READ_BUFFER_BYTES = 1024 * 1024


class _RangedObject(io.RawIOBase):
    """A read-only, seekable view of one S3 object; each read is a ranged GET."""

    def __init__(self, obj):
        self._obj = obj
        self._size = int(obj.content_length)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        body = self._obj.get(Range=f"bytes={self._pos}-{self._pos + n - 1}")["Body"]
        data = body.read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _s3_object(storage, key: str):
    from storages.backends.s3 import S3Storage
    from storages.utils import clean_name

    if not isinstance(storage, S3Storage):
        return None
    obj = storage.bucket.Object(storage._normalize_name(clean_name(key)))
    obj.load()  # a missing key fails here, as default_storage.open() would
    return obj


def open_ranged(key: str) -> IO[bytes]:
    """A seekable binary file for `key` that reads only what is asked for (close it after)."""
    if default_storage._wrapped is empty:
        default_storage._setup()
    obj = _s3_object(default_storage._wrapped, key)
    if obj is None:
        return default_storage.open(key, "rb")
    return io.BufferedReader(_RangedObject(obj), buffer_size=READ_BUFFER_BYTES)
