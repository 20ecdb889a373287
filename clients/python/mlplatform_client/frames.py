"""pandas in and out: frames to JSON records or upload files, API answers back to frames."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pandas as pd


def has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN and NaT become null, numpy numbers plain numbers, times ISO text."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def upload_file(data: Any, name: str) -> tuple[str, Any]:
    """(filename, file) for a multipart upload of a DataFrame, a path or an open file.

    A DataFrame goes as Parquet when pyarrow is installed (types kept exactly), else as CSV.
    """
    if isinstance(data, pd.DataFrame):
        buffer = io.BytesIO()
        if has_pyarrow():
            data.to_parquet(buffer, index=False)
            return f"{name}.parquet", buffer
        buffer.write(data.to_csv(index=False).encode())
        return f"{name}.csv", buffer
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        # requests builds a multipart body in memory anyway: reading the file first costs nothing more.
        with open(path, "rb") as fh:
            return os.path.basename(path), io.BytesIO(fh.read())
    if hasattr(data, "read"):
        return os.path.basename(getattr(data, "name", name)) or name, data
    raise TypeError("Upload a pandas DataFrame, a file path or an open binary file.")


def unescape_formula(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo the export's CSV formula escaping (a leading ' before = + - @ tab CR) for a frame."""
    out = frame.copy()
    out.columns = [c[1:] if isinstance(c, str) and c[:2] in _ESCAPED else c for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object:
            values = out[column]
            mask = values.map(lambda v: isinstance(v, str) and v[:2] in _ESCAPED)
            out.loc[mask, column] = values[mask].str[1:]
    return out


_ESCAPED = {"'" + c for c in "=+-@\t\r"}


def predictions_frame(predictions: list[dict], index: pd.Index) -> pd.DataFrame:
    """One row per instance: prediction, confidence, status (accepted / pending_review),
    review_id, id (for feedback), interval, and one `proba_<class>` column per class."""
    rows = []
    for p in predictions:
        row = {k: v for k, v in p.items() if k not in ("probabilities",)}
        for label, value in (p.get("probabilities") or {}).items():
            row[f"proba_{label}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows, index=index[: len(rows)])
    first = [c for c in ("prediction", "confidence", "status", "review_id", "id") if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]
