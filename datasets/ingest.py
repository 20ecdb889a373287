"""Parsing uploaded bytes into a DataFrame, defensively. Pure pandas / pyarrow, no Django.

The format is decided by the content, never trusted from the client's filename:
- Parquet starts *and* ends with `PAR1`; a zip (`PK\\x03\\x04`) renamed `.parquet` is refused;
- JSON lines when the first non-blank byte is `{`;
- otherwise CSV: encoding detected (UTF-8 / UTF-8 with BOM / UTF-16 by BOM, else
  charset-normalizer), delimiter sniffed among `,` `;` tab `|`, header required, ragged rows
  refused with the line number. Bytes with NUL or mostly control characters are refused as binary.

pyarrow is pinned above 14.0.1 (CVE-2023-47248: arbitrary code on reading a crafted Parquet
file's pandas metadata); we also read Parquet with `pq.ParquetFile` and never `read_pandas`
extension types from untrusted metadata beyond what pyarrow's fixed version allows.

Hostile files are refused by `Limits` (settings MAX_ROWS, MAX_COLUMNS, MAX_TABLE_BYTES,
MAX_JSON_DEPTH) before the work they would cost: a CSV's header is counted before parsing and
its rows are read up to the limit only; a Parquet file's metadata (rows, columns, uncompressed
size) is checked before reading, and its decoded size while reading, batch by batch; JSON lines
are counted as they are read and a line nested too deep is refused before it can recurse.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class IngestError(ValueError):
    """The bytes cannot become a table; the message says why, for the user."""


SNIFF_BYTES = 256 * 1024
DELIMITERS = [",", ";", "\t", "|"]
PARQUET_BATCH_ROWS = 16_384


@dataclass(frozen=True)
class Limits:
    """What one table may cost (the job passes the settings; these defaults match them)."""

    max_rows: int = 5_000_000
    max_columns: int = 2_000
    max_bytes: int = 2 * 1024**3
    max_depth: int = 64

    def check_columns(self, count: int) -> None:
        if count > self.max_columns:
            raise IngestError(f"The file has {count} columns; the limit is {self.max_columns} (MAX_COLUMNS).")

    def check_rows(self, count: int, *, more: bool = False) -> None:
        if count > self.max_rows:
            what = f"more than {self.max_rows}" if more else str(count)
            raise IngestError(f"The file has {what} rows; the limit is {self.max_rows} (MAX_ROWS).")

    def check_bytes(self, size: int, what: str = "The table") -> None:
        if size > self.max_bytes:
            raise IngestError(
                f"{what} is {size} bytes once decompressed; the limit is {self.max_bytes} (MAX_TABLE_BYTES)."
            )


def detect_format(head: bytes, tail: bytes) -> str:
    if not head.strip():
        raise IngestError("The file is empty.")
    if head.startswith(b"PAR1"):
        if not tail.endswith(b"PAR1"):
            raise IngestError("The file starts like Parquet but is truncated or corrupt.")
        return "parquet"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        raise IngestError("The file is a zip archive, not a CSV, Parquet or JSON lines file.")
    for magic, name in ((b"\x1f\x8b", "gzip"), (b"\x89PNG", "PNG image"), (b"%PDF", "PDF"), (b"\x7fELF", "program")):
        if head.startswith(magic):
            raise IngestError(f"The file is a {name}, not a CSV, Parquet or JSON lines file.")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return "jsonl"
    return "csv"


def detect_encoding(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if b"\x00" in head:
        raise IngestError("The file looks binary (it contains NUL bytes), not text.")
    try:
        # A cut in the middle of a multi-byte character at the end of the sample is fine.
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:
            return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(head[:SNIFF_BYTES]).best()
    if best is None:
        raise IngestError("The file is not text in any encoding we recognise (binary or garbage).")
    text = str(best)
    control = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\r\n\t")
    if control > 0.01 * max(1, len(text[:20000])):
        raise IngestError("The file looks binary (many control characters), not text.")
    return best.encoding


def sniff_delimiter(sample: str) -> str:
    lines = [ln for ln in sample.splitlines()[:50] if ln.strip()]
    if not lines:
        raise IngestError("The file is empty.")
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters="".join(DELIMITERS))
        return dialect.delimiter
    except csv.Error:
        # One column, or a delimiter the sniffer could not pin down: the most consistent count.
        best, best_score = ",", -1.0
        for d in DELIMITERS:
            counts = [ln.count(d) for ln in lines]
            if counts[0] == 0:
                continue
            score = sum(c == counts[0] for c in counts) / len(counts) + counts[0] / 1000
            if score > best_score:
                best, best_score = d, score
        return best


def read_csv_bytes(
    data: bytes | io.BufferedIOBase, head: bytes, limits: Limits = Limits()
) -> tuple[pd.DataFrame, dict]:
    if isinstance(data, bytes):
        limits.check_bytes(len(data), "The file")
    encoding = detect_encoding(head[:SNIFF_BYTES])
    sample = head[:SNIFF_BYTES].decode(encoding, errors="ignore")
    delimiter = sniff_delimiter(sample)
    first_line = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    if not header or all(not h.strip() for h in header):
        raise IngestError("The first line must be a header with column names.")
    if all(_looks_numeric(h) for h in header if h.strip()):
        raise IngestError("The first line holds numbers, not column names: a header row is required.")
    # Before any parsing: a 455 KB file with 20,000 columns once cost minutes and a 2 GB profile.
    # (A header longer than the sample is counted within the sample: a lower bound.)
    limits.check_columns(len(header))
    _check_sample_rows(sample, delimiter, len(header))
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        frame = pd.read_csv(
            source,
            sep=delimiter,
            engine="c",
            on_bad_lines="error",
            # Past the limit, stop reading instead of parsing it all (nrows costs pandas ~40%,
            # so only when the line count, an upper bound on rows, says it may be needed).
            **({"nrows": limits.max_rows + 1} if _lines(data) > limits.max_rows else {}),
            # UTF-8 is the C parser's native input; naming another encoding makes pandas decode
            # through a text wrapper, which costs about a third more time, so only when needed.
            **({} if encoding == "utf-8" else {"encoding": encoding, "encoding_errors": "strict"}),
        )
    except pd.errors.EmptyDataError:
        raise IngestError("The file is empty.") from None
    except pd.errors.ParserError as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "")
        raise IngestError(f"Ragged rows: {msg}. Every row needs as many fields as the header.") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"The file is not valid {encoding} text (byte {exc.start}).") from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns a first data row with one field too many into an implicit index column.
        raise IngestError("Ragged rows: some rows have more fields than the header.")
    if frame.shape[1] and len(frame) == 0:
        raise IngestError("The file has a header but no rows.")
    limits.check_columns(frame.shape[1])
    limits.check_rows(len(frame), more=len(frame) > limits.max_rows)
    return frame, {"format": "csv", "encoding": encoding, "delimiter": delimiter}


def _check_sample_rows(sample: str, delimiter: str, width: int) -> None:
    """Rows with a different number of fields than the header, in the sniffed sample.

    The C parser refuses rows with too many fields anywhere in the file but pads short rows
    with missing values; checking the first lines catches the usual broken export early.
    """
    lines = sample.lstrip("\ufeff").splitlines()
    if len(lines) > 1 and len(sample) >= SNIFF_BYTES - 4:
        lines = lines[:-1]  # the sample may cut the last line
    try:
        for number, row in enumerate(csv.reader(lines[:2000], delimiter=delimiter), start=1):
            if row and len(row) != width:
                raise IngestError(
                    f"Ragged rows: line {number} has {len(row)} fields but the header has {width}. "
                    "Every row needs as many fields as the header."
                )
    except csv.Error:
        return  # quoted fields spanning lines: leave it to the parser


def _lines(data: bytes | io.BufferedIOBase) -> int:
    if isinstance(data, bytes):
        return data.count(b"\n") + 1
    return 1 << 62  # a stream: count while reading


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_parquet_bytes(data: bytes | io.BufferedIOBase, limits: Limits = Limits()) -> tuple[pd.DataFrame, dict]:
    source = pa.BufferReader(data) if isinstance(data, bytes) else data
    try:
        parquet = pq.ParquetFile(source)
        meta = parquet.metadata
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"Not a valid Parquet file: {exc}") from None
    # The footer says how big the table is before a single page is decompressed: a few KB of
    # Parquet can declare (and hold) ten million rows.
    limits.check_columns(len(schema))
    limits.check_rows(meta.num_rows)
    limits.check_bytes(sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)))
    # Nested types (lists, structs, maps) are not tabular data for a model: refuse them clearly.
    for fld in schema:
        if pa.types.is_nested(fld.type):
            raise IngestError(f"Column {fld.name!r} holds nested values ({fld.type}); only flat columns are supported.")
    # Encoded sizes can understate decoded ones (dictionary and delta encodings of long strings),
    # so the decoded size is checked too, batch by batch, and reading stops at the limit.
    batches, rows, size = [], 0, 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_pandas_metadata=False):
            rows += batch.num_rows
            size += batch.nbytes
            limits.check_rows(rows, more=True)
            limits.check_bytes(size)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"Not a valid Parquet file: {exc}") from None
    return table.to_pandas(), {"format": "parquet"}


def _depth(value: object) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _json_line(line: bytes, number: int, limits: Limits) -> dict:
    too_deep = f"Line {number} is nested deeper than the limit of {limits.max_depth} levels (MAX_JSON_DEPTH)."
    try:
        # The decoder recurses per level; a deep line raises RecursionError, caught here (a line
        # cannot be deeper than its count of brackets, so most lines need no further check).
        row = json.loads(line)
    except RecursionError:
        raise IngestError(too_deep) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IngestError(f"Line {number} is not valid JSON: {exc}") from None
    if line.count(b"[") + line.count(b"{") > limits.max_depth and _depth(row) > limits.max_depth:
        raise IngestError(too_deep)
    if not isinstance(row, dict):
        raise IngestError(f"Line {number} is not a JSON object.")
    return row


def read_jsonl_bytes(data: bytes, limits: Limits = Limits()) -> tuple[pd.DataFrame, dict]:
    limits.check_bytes(len(data), "The file")
    rows: list[dict] = []
    columns: set[str] = set()
    for number, line in enumerate(io.BytesIO(data), start=1):
        if not line.strip():
            continue
        row = _json_line(line, number, limits)
        columns.update(row)
        if len(columns) > limits.max_columns:
            limits.check_columns(len(columns))
        rows.append(row)
        limits.check_rows(len(rows), more=True)
    if not rows:
        raise IngestError("The file is empty.")
    return rows_to_frame(rows), {"format": "jsonl"}


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise IngestError(f"Row {i} is not an object of column: value.")
        for key, value in row.items():
            if isinstance(value, dict | list):
                raise IngestError(f"Row {i}, column {key!r}: nested values are not supported.")
    return pd.DataFrame.from_records(rows)


def read_table(data: bytes, limits: Limits = Limits()) -> tuple[pd.DataFrame, dict]:
    """Any supported file's bytes -> (frame, what was detected), within `limits`."""
    fmt = detect_format(data[:SNIFF_BYTES], data[-8:])
    if fmt == "parquet":
        return read_parquet_bytes(data, limits)
    if fmt == "jsonl":
        return read_jsonl_bytes(data, limits)
    return read_csv_bytes(data, data[:SNIFF_BYTES], limits)


@dataclass
class Prepared:
    """A parsed frame made ready for storage: row hashes, profile and Parquet bytes."""

    hashes: np.ndarray
    profile: dict
    parquet: bytes


def prepare(frame: pd.DataFrame, *, target: str = "", task: str = "", objective: str = "") -> Prepared:
    """Profile the frame while another thread hashes its rows and encodes it as Parquet.

    Hashing and Parquet encoding run in numpy / Arrow code that releases the GIL, so on two
    cores they overlap with the profile instead of adding to it.
    """
    from concurrent.futures import ThreadPoolExecutor

    from datasets.profiling import profile_frame
    from datasets.storage import frame_to_parquet, row_hashes

    with ThreadPoolExecutor(max_workers=1) as pool:
        hashes_future = pool.submit(row_hashes, frame)
        parquet_future = pool.submit(frame_to_parquet, frame)
        profile = profile_frame(frame, target=target, task=task, hashes=hashes_future.result, objective=objective)
        return Prepared(hashes_future.result(), profile, parquet_future.result())
