"""Reading and writing version data as Parquet through Django's storage API."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from mlplatform.artifacts import StoredArtifact, bytes_save


def content_hash(frame: pd.DataFrame) -> str:
    """A hash of the table's content (names, dtypes, values), independent of file encoding."""
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def frame_save(frame: pd.DataFrame, *, prefix: str) -> StoredArtifact:
    return bytes_save(frame_to_parquet(frame), prefix=prefix, suffix=".parquet")


def frame_load(key: str, columns: list[str] | None = None) -> pd.DataFrame:
    with default_storage.open(key, "rb") as fh:
        return pq.read_table(fh, columns=columns).to_pandas()


def assignment_save(assignment: np.ndarray, *, prefix: str) -> StoredArtifact:
    return frame_save(pd.DataFrame({"part": assignment.astype(np.int8)}), prefix=prefix)


def assignment_load(key: str) -> np.ndarray:
    return frame_load(key)["part"].to_numpy()
