"""What one batch input may cost: the ingest limits (`datasets.ingest.Limits`, settings
MAX_COLUMNS, MAX_ROWS, MAX_TABLE_BYTES) applied to an uploaded file.

Checked twice. When the file is uploaded (`upload_check`, a clear 413 naming `file` before any
job is queued): the CSV header's column count and the file's size; the Parquet footer's columns,
rows and declared size, and refusal of nested columns (a few KB of Parquet can declare ten
million rows). While the job reads it (`Counter`): rows and decoded bytes, chunk by chunk, since
a CSV's rows are only known by reading it and Parquet encodings can understate decoded sizes;
the job stops at the limit and fails naming it.
"""

from __future__ import annotations

import csv
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings

from datasets.ingest import SNIFF_BYTES, IngestError, Limits, detect_encoding, sniff_delimiter
from mlplatform.errors import InvalidInput, PayloadTooLarge


def batch_limits() -> Limits:
    return Limits(
        max_rows=settings.MAX_ROWS,
        max_columns=settings.MAX_COLUMNS,
        max_bytes=settings.MAX_TABLE_BYTES,
        max_depth=settings.MAX_JSON_DEPTH,
    )


def upload_check(upload: Any, fmt: str) -> None:
    """413 naming `file` when the upload is over a limit, 400 when it is not a table we read."""
    limits = batch_limits()
    try:
        if fmt == "parquet":
            _parquet_check(upload, limits)
        else:
            _csv_check(upload, limits)
    except IngestError as exc:
        raise PayloadTooLarge(str(exc), field="file") from None
    finally:
        upload.seek(0)


def _csv_check(upload: Any, limits: Limits) -> None:
    limits.check_bytes(upload.size, "The file")
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    try:
        encoding = detect_encoding(head)
        sample = head.decode(encoding, errors="ignore")
        delimiter = sniff_delimiter(sample)
    except IngestError as exc:
        raise InvalidInput(str(exc), field="file") from None
    first = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
    # A header longer than the sample is counted within the sample: a lower bound, still over.
    limits.check_columns(len(next(csv.reader([first], delimiter=delimiter), [])))


def _parquet_check(upload: Any, limits: Limits) -> None:
    upload.seek(0)
    try:
        parquet = pq.ParquetFile(upload)
        meta, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"Not a valid Parquet file: {exc}", field="file") from None
    limits.check_columns(len(schema))
    limits.check_rows(meta.num_rows)
    limits.check_bytes(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)))
    for fld in schema:
        if pa.types.is_nested(fld.type):
            raise InvalidInput(
                f"Column {fld.name!r} holds nested values ({fld.type}); only flat columns are supported.", field="file"
            )


class BatchInputTooLarge(Exception):
    """The job read past a limit: it fails with this message (no retry)."""


class Counter:
    """Rows and decoded bytes read so far by the job; raises past the limits."""

    def __init__(self) -> None:
        self.limits = batch_limits()
        self.rows = 0
        self.bytes = 0

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self.bytes += table.nbytes
        try:
            self.limits.check_columns(table.num_columns)
            self.limits.check_rows(self.rows, more=True)
            self.limits.check_bytes(self.bytes)
        except IngestError as exc:
            raise BatchInputTooLarge(str(exc)) from None
