"""Parsing uploaded bytes into a DataFrame, defensively. Pure pandas / pyarrow, no Django.

The format is decided by the content, never trusted from the client's filename:
- Parquet starts *and* ends with `PAR1`; a zip (`PK\\x03\\x04`) renamed `.parquet` is refused;
- JSON lines when the first non-blank byte is `{`;
- otherwise CSV: encoding detected (UTF-8 / UTF-8 with BOM / UTF-16 by BOM, else
  charset-normalizer), delimiter sniffed among `,` `;` tab `|`, header required, ragged rows
  refused with the line number. Bytes with NUL or mostly control characters are refused as binary.

pyarrow is pinned above 14.0.1 (CVE-2023-47248: arbitrary code on reading a crafted Parquet
file's pandas metadata); we also read Parquet with `pq.read_table` and never `read_pandas`
extension types from untrusted metadata beyond what pyarrow's fixed version allows.
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


def read_csv_bytes(data: bytes | io.BufferedIOBase, head: bytes) -> tuple[pd.DataFrame, dict]:
    encoding = detect_encoding(head[:SNIFF_BYTES])
    sample = head[:SNIFF_BYTES].decode(encoding, errors="ignore")
    delimiter = sniff_delimiter(sample)
    first_line = sample.lstrip("\ufeff").splitlines()[0] if sample.strip() else ""
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    if not header or all(not h.strip() for h in header):
        raise IngestError("The first line must be a header with column names.")
    if all(_looks_numeric(h) for h in header if h.strip()):
        raise IngestError("The first line holds numbers, not column names: a header row is required.")
    _check_sample_rows(sample, delimiter, len(header))
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        frame = pd.read_csv(
            source,
            sep=delimiter,
            engine="c",
            on_bad_lines="error",
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


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_parquet_bytes(data: bytes | io.BufferedIOBase) -> tuple[pd.DataFrame, dict]:
    source = pa.BufferReader(data) if isinstance(data, bytes) else data
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"Not a valid Parquet file: {exc}") from None
    # Nested types (lists, structs, maps) are not tabular data for a model: refuse them clearly.
    for fld in table.schema:
        if pa.types.is_nested(fld.type):
            raise IngestError(f"Column {fld.name!r} holds nested values ({fld.type}); only flat columns are supported.")
    return table.to_pandas(), {"format": "parquet"}


def read_jsonl_bytes(data: bytes) -> tuple[pd.DataFrame, dict]:
    rows = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IngestError(f"Line {number} is not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise IngestError(f"Line {number} is not a JSON object.")
        rows.append(row)
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


def read_table(data: bytes) -> tuple[pd.DataFrame, dict]:
    """Any supported file's bytes -> (frame, what was detected)."""
    fmt = detect_format(data[:SNIFF_BYTES], data[-8:])
    if fmt == "parquet":
        return read_parquet_bytes(data)
    if fmt == "jsonl":
        return read_jsonl_bytes(data)
    return read_csv_bytes(data, data[:SNIFF_BYTES])


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
