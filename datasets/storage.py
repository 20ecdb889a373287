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
from mlplatform.storage_io import open_ranged


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row (content only): shared by the content hash and the duplicate count."""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def content_hash(frame: pd.DataFrame, hashes: np.ndarray | None = None) -> str:
    """A hash of the table's content (names, dtypes, values), independent of file encoding."""
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        h.update((row_hashes(frame) if hashes is None else hashes).tobytes())
    return h.hexdigest()


ROW_GROUP_ROWS = 65_536


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Dictionary encoding only where it pays (text); on high-cardinality floats pyarrow tries it
    # and falls back, which doubled the write time. lz4 reads back faster than zstd on 2 cores.
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    # Row groups of 64k rows: a page of rows or an export reads only the groups it needs
    # (datasets/rows.py) instead of a whole million-row group.
    pq.write_table(table, buffer, compression="lz4", use_dictionary=text or False, row_group_size=ROW_GROUP_ROWS)
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


def frame_head(key: str, rows: int) -> pd.DataFrame:
    """The first `rows` rows without reading the whole file (previews, recipe checks)."""
    with open_ranged(key) as fh:
        parquet = pq.ParquetFile(fh, pre_buffer=False)  # only the row groups it reads
        batches = []
        count = 0
        for batch in parquet.iter_batches(batch_size=min(max(rows, 1), 65536)):
            batches.append(batch)
            count += batch.num_rows
            if count >= rows:
                break
        if not batches:
            return parquet.schema_arrow.empty_table().to_pandas()
        return pa.Table.from_batches(batches).slice(0, rows).to_pandas()
