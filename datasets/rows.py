"""Reading a version's rows back: stable row ids, the split as a filter, cursor pages, exports.

A **row id** is the row's position in the version's stored order, 0-based. It is assigned at
ingest (the file's order) and kept by every version derived by appending rows: an append
stores the parent's rows first, unchanged and in order, then the new ones (`rows_append`), so
row 17 of version 3 is row 17 of version 4. A new upload, a cleaning step that drops rows and
a retrain number their rows afresh.

Reads touch only what a request needs: the split assignment (one int8 per row), the Parquet
row groups that hold the page, and the requested columns. Nothing here knows Django except
the storage it opens files from. The locked test rows are never returned.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.storage import default_storage

from datasets import splitting
from mlplatform.storage_io import open_ranged

PART_NAMES = {splitting.TRAIN: "train", splitting.VAL: "validation", splitting.TEST: "test"}
PARTS = {"train": splitting.TRAIN, "validation": splitting.VAL}
MAX_PAGE = 500


class RowsError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


class TestRowsLocked(RowsError):
    """The caller asked for the locked test rows."""


def parse_split(value: str | None, *, has_split: bool) -> int | None:
    if value in (None, ""):
        return None
    if value == "test":
        raise TestRowsLocked(
            "The test rows are locked: only the one final evaluation reads them. Ask for train or validation.",
            "split",
        )
    if value not in PARTS:
        raise RowsError(f"Unknown split {value!r}: use train or validation.", "split")
    if not has_split:
        raise RowsError("This version has no train / validation / test split yet: split it first.", "split")
    return PARTS[value]


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"r:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "r" or not value.isdigit():
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise RowsError("Not a cursor from this API: use the `next` link of the previous page.", "cursor") from None


def visible_positions(assignment: np.ndarray | None, n_rows: int, part: int | None) -> np.ndarray:
    """Row ids a reader may see: every row before a split; train and validation after it."""
    if assignment is None:
        return np.arange(n_rows, dtype=np.int64)
    mask = assignment == part if part is not None else assignment != splitting.TEST
    return np.flatnonzero(mask)


@dataclass
class RowPage:
    columns: list[str]
    frame: pd.DataFrame
    row_ids: np.ndarray
    parts: np.ndarray | None
    count: int
    next_row_id: int | None  # where the next page starts


def _row_group_starts(parquet: pq.ParquetFile) -> np.ndarray:
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def read_positions(key: str, positions: np.ndarray, columns: list[str] | None) -> pa.Table:
    """The rows at sorted `positions`, reading only the row groups that hold them."""
    with open_ranged(key) as fh:
        parquet = pq.ParquetFile(fh)
        if len(positions) == 0:
            schema = parquet.schema_arrow
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        starts = _row_group_starts(parquet)
        first = int(np.searchsorted(starts, positions[0], side="right") - 1)
        last = int(np.searchsorted(starts, positions[-1], side="right") - 1)
        groups = list(range(first, last + 1))
        table = parquet.read_row_groups(groups, columns=columns, use_threads=False)
        return table.take(pa.array(positions - starts[first]))


def rows_page(
    *,
    key: str,
    assignment: np.ndarray | None,
    n_rows: int,
    part: int | None,
    size: int,
    start_row_id: int | None = None,
    offset: int | None = None,
    columns: list[str] | None = None,
) -> RowPage:
    """One page of visible rows, from a row id (cursor) or an offset (legacy `?page=`)."""
    positions = visible_positions(assignment, n_rows, part)
    begin = int(np.searchsorted(positions, start_row_id)) if start_row_id is not None else (offset or 0)
    page = positions[begin : begin + size]
    table = read_positions(key, page, columns)
    following = begin + size
    return RowPage(
        columns=[str(c) for c in table.column_names],
        frame=table.to_pandas(),
        row_ids=page,
        parts=assignment[page] if assignment is not None else None,
        count=len(positions),
        next_row_id=int(positions[following]) if following < len(positions) else None,
    )


def _json_cell(value):
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value) if not isinstance(value, int | str) else value


def frame_rows(frame: pd.DataFrame) -> list[list]:
    return [[_json_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def check_columns(requested: str | None, available: list[str]) -> list[str] | None:
    if not requested:
        return None
    names = [c.strip() for c in requested.split(",") if c.strip()]
    unknown = [c for c in names if c not in available]
    if unknown:
        raise RowsError(f"Unknown column {unknown[0]!r}; the columns are {', '.join(available)}.", "columns")
    return names


# --- export -----------------------------------------------------------------------------------

# A cell starting like this is run as a formula by spreadsheets (OWASP CSV injection).
FORMULA_START = r"^[=+\-@\t\r]"
# ...but a plain negative number is a number, and stays one.
NEGATIVE_NUMBER = r"^-\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def escape_formula(value) -> str:
    """One cell or header for CSV: a leading quote on anything a spreadsheet would run."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        if not (text[0] == "-" and _is_number(text)):
            return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def escape_table(table: pa.Table) -> pa.Table:
    """Every text cell escaped like `escape_formula`, vectorised (numbers cannot start a formula)."""
    import pyarrow.compute as pc

    arrays = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.large_string())
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.and_(
                pc.match_substring_regex(column, FORMULA_START),
                pc.invert(pc.match_substring_regex(column, NEGATIVE_NUMBER)),
            )
            quote, empty = pa.scalar("'", type=column.type), pa.scalar("", type=column.type)
            column = pc.if_else(risky, pc.binary_join_element_wise(quote, column, empty), column)
        arrays.append(column)
    return pa.table(arrays, names=[escape_formula(n) for n in table.column_names])


class _Sink:
    """A write-only file that hands its bytes out as they come (for a streamed response)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def visible_batches(
    key: str, assignment: np.ndarray | None, part: int | None, columns: list[str] | None, *, with_meta: bool
) -> Iterator[pa.Table]:
    """The visible rows, one row group (or 64k rows of a larger group) at a time."""
    # Read from start to end: one download (S3), not a ranged request per column chunk.
    with default_storage.open(key, "rb") as fh:
        # pre_buffer keeps every row group read so far: memory would grow with the version.
        parquet = pq.ParquetFile(fh, pre_buffer=False)
        start = 0
        for batch in parquet.iter_batches(batch_size=65_536, columns=columns, use_threads=False):
            n = batch.num_rows
            table = pa.Table.from_batches([batch])
            if assignment is not None:
                parts = assignment[start : start + n]
                keep = parts == part if part is not None else parts != splitting.TEST
                table = table.filter(pa.array(keep))
                parts = parts[keep]
            else:
                parts = None
            if with_meta:
                ids = np.arange(start, start + n, dtype=np.int64)
                if assignment is not None:
                    ids = ids[keep]
                table = table.add_column(0, "_row_id", pa.array(ids))
                names = [PART_NAMES[int(p)] for p in parts] if parts is not None else [None] * len(ids)
                table = table.add_column(1, "_split", pa.array(names, pa.string()))
            start += n
            yield table


def export_csv(batches: Iterator[pa.Table]) -> Iterator[bytes]:
    import pyarrow.csv as pacsv

    first = True
    for table in batches:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(escape_table(table), sink, write_options=pacsv.WriteOptions(include_header=first))
        first = False
        yield sink.getvalue().to_pybytes()


def export_parquet(batches: Iterator[pa.Table], schema: pa.Schema) -> Iterator[bytes]:
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for table in batches:
            writer.write_table(table.cast(schema))
            chunk = sink.drain()
            if chunk:
                yield chunk
    finally:
        writer.close()
    yield sink.drain()


def export_schema(key: str, columns: list[str] | None, *, with_meta: bool) -> pa.Schema:
    with open_ranged(key) as fh:
        schema = pq.ParquetFile(fh).schema_arrow
    if columns:
        schema = pa.schema([schema.field(c) for c in columns])
    schema = schema.remove_metadata()
    if with_meta:
        schema = schema.insert(0, pa.field("_row_id", pa.int64())).insert(1, pa.field("_split", pa.string()))
    return schema
