"""Messy text categories: "South", "south", "south " and "Soutth" are one region.

Two levels, both learned from training rows only and saved with the model:
1. *Normalisation*, always: Unicode NFKC, case folding, no leading / trailing spaces, one space
   between words. Values equal after it are one category, spelled as its most frequent form.
2. *Near-identical spellings*, optional and conservative: a rare spelling one edit away from a
   much more frequent one (two edits for long values) is merged into it. The rule refuses
   whenever a merge could join two real categories:
   - both spellings have at least MIN_LENGTH characters (short codes such as "AB"/"AC", "east" /
     "west" differ by one letter and are different things);
   - their digits are the same (product "A100" is not "A101");
   - the frequent spelling has at least RATIO times the rows of the rare one, and the rare one is
     at most MAX_SHARE of the rows (two common spellings are two categories, not a typo);
   - exactly one frequent spelling is that close (ambiguous typos are left alone).
   Columns with more than MAX_KEYS distinct values skip the merge (ids and free text are not
   categories, and the pairwise comparison would cost too much).

Plain Python and pandas, no Django: used by the recipe step `clean_categories` (the
`datasets.transformers.CategoryCleaner` transformer) and by the automatic recipe to find
columns worth cleaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

MIN_LENGTH = 5
LONG_LENGTH = 10  # from this length two edits count as near-identical
RATIO = 5.0
MAX_SHARE = 0.05
MAX_KEYS = 500
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\D")


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT


def tidy(value: Any) -> str:
    """The value's text with Unicode normalised and spaces cleaned (case kept)."""
    text = unicodedata.normalize("NFKC", str(value))
    return _SPACES.sub(" ", text).strip()


def key_of(value: Any) -> str:
    """What two spellings of one category have in common: tidy text, case folded."""
    return tidy(value).casefold()


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (insert, delete, substitute, swap two neighbours),
    returning limit + 1 as soon as it must exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _near(rare: str, common: str) -> bool:
    shorter = min(len(rare), len(common))
    if shorter < MIN_LENGTH or _DIGITS.sub("", rare) != _DIGITS.sub("", common):
        return False
    limit = 2 if shorter >= LONG_LENGTH else 1
    return edit_distance(rare, common, limit) <= limit


@dataclass
class CategoryCleaning:
    """What cleaning one column does: canonical spelling per key, and merged keys."""

    canonical: dict[str, str] = field(default_factory=dict)  # key -> spelling used
    merged: dict[str, str] = field(default_factory=dict)  # rare key -> frequent key
    variants: dict[str, list[str]] = field(default_factory=dict)  # spelling used -> raw spellings it absorbs
    merge_skipped: str = ""  # why near-identical spellings were not looked for

    def apply(self, value: Any) -> Any:
        if is_missing(value):
            return value
        key = key_of(value)
        key = self.merged.get(key, key)
        return self.canonical.get(key, tidy(value))

    @property
    def changes(self) -> bool:
        """True when some raw spelling becomes another one."""
        return any(len(raw) > 1 or raw[0] != spelling for spelling, raw in self.variants.items())


def learn(values: pd.Series | list[Any], *, merge_similar: bool = True) -> CategoryCleaning:
    """Learn one column's cleaning from its (training) values."""
    raw_counts = Counter(str(v) for v in values if not is_missing(v))
    by_key: dict[str, Counter[str]] = {}
    for raw, n in raw_counts.items():
        by_key.setdefault(key_of(raw), Counter())[tidy(raw)] += n
    key_counts = {k: sum(c.values()) for k, c in by_key.items()}
    # The most frequent spelling names the category (ties: the alphabetically first).
    canonical = {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in by_key.items()}
    merged: dict[str, str] = {}
    skipped = ""
    if merge_similar and len(key_counts) > MAX_KEYS:
        skipped = f"{len(key_counts)} distinct values: too many to be categories, spellings not compared."
    elif merge_similar:
        total = sum(key_counts.values()) or 1
        order = sorted(key_counts, key=lambda k: (-key_counts[k], k))
        for i, rare in enumerate(order):
            n = key_counts[rare]
            if n / total > MAX_SHARE:
                continue
            close = [
                common
                for common in order[:i]
                if common not in merged and key_counts[common] >= RATIO * n and _near(rare, common)
            ]
            if len(close) == 1:
                merged[rare] = close[0]
    variants: dict[str, list[str]] = {}
    for raw in sorted(raw_counts, key=lambda r: -raw_counts[r]):
        key = key_of(raw)
        variants.setdefault(canonical[merged.get(key, key)], []).append(raw)
    return CategoryCleaning(canonical, merged, variants, skipped)


def mapping_table(cleaning: CategoryCleaning) -> list[dict[str, Any]]:
    """The spellings that change, for people: [{"to", "from": [...], "similar": [...]}], where
    `similar` lists the spellings merged as near-identical (typos), the rest differ only by
    case, spaces or Unicode form."""
    rows = []
    for spelling, raw in cleaning.variants.items():
        changed = [r for r in raw if r != spelling]
        if not changed:
            continue
        similar = [r for r in changed if key_of(r) in cleaning.merged]
        rows.append({"to": spelling, "from": changed, "similar": similar})
    return rows
