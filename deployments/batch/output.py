"""A batch's output file: scored chunks appended to a CSV (safe against formula injection) or a
Parquet file, stored under a generated key at the end."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.files import File

from datasets.rows import escape_formula
from deployments.batch.arrow_json import decoded, json_values

# A cell a spreadsheet would run as a formula: = + - @ tab or CR first.
_FORMULA_RE = "^[=+\\-@\t\r]"


def csv_safe(table: pa.Table) -> pa.Table:
    """Strings that a spreadsheet would run as formulas (= + - @ tab CR first) get a leading
    apostrophe: every text cell, and every header (input column names, `proba_<class>`), the
    headers by the same rule as the dataset export (`datasets.rows.escape_formula`)."""
    table = table.rename_columns([escape_formula(name) for name in table.column_names])
    for j, field in enumerate(table.schema):
        col = decoded(table.column(j))
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            if col.type != field.type:
                table = table.set_column(j, pa.field(field.name, col.type), col)
            continue
        col = col.cast(pa.string())  # pandas writes large_string
        risky = pc.fill_null(pc.match_substring_regex(col, _FORMULA_RE), False)
        if pc.any(risky).as_py():
            col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        table = table.set_column(j, pa.field(field.name, col.type), col)
    return table


def _csv_writable(table: pa.Table) -> pa.Table:
    """Columns pyarrow's CSV writer cannot write (lists, structs...) as their JSON text."""
    for j, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_nested(t) or (pa.types.is_dictionary(t) and not pa.types.is_string(t.value_type)):
            table = table.set_column(j, pa.field(field.name, pa.string()), json_values(table.column(j)))
    return table


class OutputWriter:
    """Appends scored chunks to a local CSV (formula-safe) or Parquet file."""

    def __init__(self, path: str, fmt: str):
        self.fmt = fmt
        self._fh = open(path, "wb")  # closed in close()
        self._parquet: pq.ParquetWriter | None = None
        self._header = True

    def write(self, table: pa.Table) -> None:
        if self.fmt == "csv":
            table = _csv_writable(csv_safe(table))
            pacsv.write_csv(table, self._fh, pacsv.WriteOptions(include_header=self._header))
            self._header = False
            return
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._fh, table.schema, compression="zstd")
        self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self) -> None:
        try:
            if self._parquet is not None:
                self._parquet.close()
                self._parquet = None
        finally:
            self._fh.close()


class LocalFile(File):
    """The finished output file: a file-system storage moves it into place instead of copying it."""

    def temporary_file_path(self) -> str:
        return self.name
