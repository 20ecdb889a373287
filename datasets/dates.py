"""Dates written as text: recognise the format once, then parse every value the same way.

Pure pandas. The profile records the format it recognised (`date_format` on the column), the
recipes' date steps learn the same format when they are fitted (and save it with the model), and
time splits use it too, so `01/03/2018` means one day everywhere, never January 3rd in one place
and March 1st in another (which is what per-value "mixed" parsing does: it reads `01/03/2018`
month-first and `13/03/2018` day-first in the same column).

Formats are strftime patterns, plus three special names:
- `ISO8601`: `2018-03`, `2018-03-01`, `2018-03-01T10:00:00Z`, ... (pandas' ISO parser);
- `epoch_s`, `epoch_ms`: numbers of seconds / milliseconds since 1970, recognised only when
  the column's name says so (`created_ts`, `unix_time`, `event_timestamp`), because any
  column of large integers would otherwise look like times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

ISO = "ISO8601"
EPOCH_S = "epoch_s"
EPOCH_MS = "epoch_ms"
SPECIAL_FORMATS = (ISO, EPOCH_S, EPOCH_MS)

# A format is chosen only if it parses this share of the distinct values seen: a column of
# codes with a few date-looking entries stays categorical.
MIN_PARSED_SHARE = 0.95
SAMPLE_ROWS = 20_000
SAMPLE_VALUES = 5000
FIRST_PASS = 300

_TIME = r"( \d{1,2}:\d{2}(:\d{2})?)?"
# (shape of the text, candidate formats in order of preference). The shape test is a cheap
# regular expression; only the candidates of a matching shape are tried with pandas. Where the
# day / month order cannot be told from the shape, month-first comes first (pandas' and the US
# convention); values above 12 decide, otherwise the column is marked ambiguous.
_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    (r"\d{4}-\d{1,2}(-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?)?", (ISO,)),
    (r"\d{4}/\d{1,2}/\d{1,2}" + _TIME, ("%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S")),
    (
        r"\d{1,2}/\d{1,2}/\d{4}" + _TIME,
        ("%m/%d/%Y", "%d/%m/%Y", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"),
    ),
    (r"\d{1,2}-\d{1,2}-\d{4}" + _TIME, ("%m-%d-%Y", "%d-%m-%Y", "%m-%d-%Y %H:%M", "%d-%m-%Y %H:%M")),
    (r"\d{1,2}\.\d{1,2}\.\d{4}" + _TIME, ("%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S")),
    (r"\d{1,2}/\d{4}", ("%m/%Y",)),
    (r"\d{1,2}-\d{4}", ("%m-%Y",)),
    (r"[A-Za-z]{3,9}[- ]\d{4}", ("%b-%Y", "%B-%Y", "%b %Y", "%B %Y")),
    (r"[A-Za-z]{3}-\d{2}", ("%b-%y",)),  # Excel's mmm-yy: Mar-18 is March 2018
    (r"\d{1,2}[- ][A-Za-z]{3,9}[- ]\d{2}(\d{2})?", ("%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%d-%B-%Y", "%d-%b-%y")),
    (r"[A-Za-z]{3,9}\.? \d{1,2}, \d{4}", ("%b %d, %Y", "%B %d, %Y")),
]
_COMPILED = [(re.compile(pattern), formats) for pattern, formats in _FAMILIES]

_EPOCH_TOKENS = {"timestamp", "epoch", "unix", "ts", "unixtime", "posix"}
# Seconds between 1973 and 2100, or the same in milliseconds.
_EPOCH_RANGES = {EPOCH_S: (1e8, 4.2e9), EPOCH_MS: (1e11, 4.2e12)}


@dataclass(frozen=True)
class DateGuess:
    format: str  # "" for values that are already datetimes
    ambiguous: bool = False  # day / month order not decided by the data (read month-first)


def name_tokens(name: str) -> set[str]:
    """Lower-case words of a column name: `customerAge` and `customer_age` -> {customer, age}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return {t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t}


def detect_date_format(series: pd.Series) -> DateGuess | None:
    """The one format that reads (almost) every distinct value of a text column as a date."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return DateGuess("")
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return None
    values = series.dropna()
    if len(values) > SAMPLE_ROWS:
        # A random sample, not the head: the first rows of a sorted log all share a day <= 12,
        # which would leave day / month order undecided.
        values = values.sample(SAMPLE_ROWS, random_state=0)
    values = pd.Series(pd.unique(values.astype(str).str.strip()))
    values = values[values != ""]
    if len(values) > SAMPLE_VALUES:
        values = values.sample(SAMPLE_VALUES, random_state=0)
    if values.empty:
        return None
    # Cheap exits for ordinary categories: dates contain digits and are short.
    head = values.head(200)
    if head.str.contains(r"\d", regex=True).mean() < MIN_PARSED_SHARE or head.str.len().max() > 40:
        return None
    for pattern, formats in _COMPILED:
        if values.head(200).map(lambda v, p=pattern: p.fullmatch(v) is not None).mean() < MIN_PARSED_SHARE:
            continue
        return _best_format(values, formats)
    return None


def _best_format(values: pd.Series, formats: tuple[str, ...]) -> DateGuess | None:
    # A first pass on a few hundred values weeds out formats that cannot be it; the survivors
    # (often one, two for 01/03 vs 03/01) read every sampled value.
    head = values.head(FIRST_PASS)
    formats = tuple(f for f in formats if _parse_text(head, f).notna().mean() >= MIN_PARSED_SHARE)
    shares: list[tuple[float, str, pd.Series]] = []
    for fmt in formats:
        parsed = _parse_text(values, fmt)
        shares.append((float(parsed.notna().mean()), fmt, parsed))
    if not shares:
        return None
    best = max(s for s, _, _ in shares)
    if best < MIN_PARSED_SHARE:
        return None
    winners = [(fmt, parsed) for s, fmt, parsed in shares if s == best]
    fmt, parsed = winners[0]
    # Two formats that read every value but give different dates: 01/03 vs 03/01.
    ambiguous = any(not parsed.equals(other) for _, other in winners[1:])
    return DateGuess(fmt, ambiguous)


def epoch_format(name: str, series: pd.Series) -> str | None:
    """`epoch_s` / `epoch_ms` for a numeric column whose name says it holds timestamps."""
    tokens = name_tokens(name)
    if not (tokens & _EPOCH_TOKENS) or not pd.api.types.is_numeric_dtype(series):
        return None
    if pd.api.types.is_bool_dtype(series):
        return None
    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty:
        return None
    for fmt, (lo, hi) in _EPOCH_RANGES.items():
        if values.between(lo, hi).mean() >= 0.99:
            return fmt
    return None


def _parse_text(text: pd.Series, fmt: str) -> pd.Series:
    kwargs = {"format": fmt} if fmt else {"format": "mixed"}
    try:
        parsed = pd.to_datetime(text, errors="coerce", **kwargs)
    except (ValueError, TypeError):
        # Mixed UTC offsets cannot share one naive column: read them all in UTC.
        parsed = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def parse_dates(series: pd.Series, fmt: str | None = None) -> pd.Series:
    """Datetimes from a column: with `fmt` (a recorded format), else the detected one.

    Values the format cannot read become missing (NaT). Time zones are converted to UTC and
    dropped, so every date column is naive and comparable.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            return series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series
    if fmt is None:
        guess = detect_date_format(series)
        fmt = guess.format if guess else ""
    if fmt in (EPOCH_S, EPOCH_MS):
        numbers = pd.to_numeric(series, errors="coerce")
        return pd.to_datetime(numbers, unit="s" if fmt == EPOCH_S else "ms", errors="coerce")
    if not fmt and pd.api.types.is_numeric_dtype(series):
        return pd.to_datetime(series, errors="coerce")  # numbers without a format: as pandas reads them
    text = series.astype("string").str.strip()
    return _parse_text(text, fmt)


def valid_format(fmt: str) -> bool:
    """A format a user may name in a recipe: one of the special names or a strftime pattern."""
    return isinstance(fmt, str) and 0 < len(fmt) <= 60 and (fmt in SPECIAL_FORMATS or "%" in fmt)
