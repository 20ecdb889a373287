"""Impossible values: a small, documented rule set on quantities recognised by their name.

Each rule names the words a column's name must contain (as a whole word: `customer_age` and
`customerAge` are ages, `page_views`, `usage` and `mileage` are not), the words that turn it
off, the valid range, and the reason given to the user. The adult-age rule also needs the data
to look like credit: a credit word in a column name (`card`, `loan`, `debt_to_income`) or in the
project's objective. Nothing else is guessed: a column that matches no rule is never called
impossible.

| rule | name has | unless it has | valid | why |
|---|---|---|---|---|
| age | age | a unit other than years, or a thing (building, vehicle, account...) | 0 to 120 | a person's age in years |
| adult_age | age (as above), in credit data | same | 18 or more | credit applicants are adults |
| count | count, num, number, qty, quantity | | 0 or more | a count cannot be negative |
| percent | percent, pct, percentage | change, growth, diff, delta, return | 0 to 100 | a share in percent |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.dates import name_tokens

from .common import fmt_number
from .warnings import warning

CREDIT_WORDS = frozenset(
    {"credit", "loan", "loans", "card", "cards", "mortgage", "lending", "lender", "borrower", "debt", "overdraft"}
)
_NOT_YEARS = {"months", "month", "weeks", "week", "days", "day", "hours", "minutes", "seconds", "ms"}
_THINGS = {"building", "house", "home", "vehicle", "car", "account", "loan", "property", "tree", "equipment", "asset"}


@dataclass(frozen=True)
class Rule:
    name: str
    words: frozenset[str]
    unless: frozenset[str]
    low: float | None
    high: float | None
    why: str
    credit_only: bool = False


RULES: tuple[Rule, ...] = (
    Rule("age", frozenset({"age"}), frozenset(_NOT_YEARS | _THINGS), 0, 120, "an age in years lies between 0 and 120"),
    Rule(
        "adult_age",
        frozenset({"age"}),
        frozenset(_NOT_YEARS | _THINGS),
        18,
        None,
        "credit applicants are adults (18 or older)",
        credit_only=True,
    ),
    Rule(
        "count",
        frozenset({"count", "num", "number", "qty", "quantity"}),
        frozenset(),
        0,
        None,
        "a count cannot be negative",
    ),
    Rule(
        "percent",
        frozenset({"percent", "pct", "percentage"}),
        frozenset({"change", "growth", "diff", "delta", "return", "returns"}),
        0,
        100,
        "a percentage lies between 0 and 100",
    ),
)


def credit_context(column_names: list[str], objective: str = "") -> list[str]:
    """The words that make the data look like credit data (empty when it does not)."""
    found: list[str] = []
    for name in column_names:
        if name_tokens(name) & CREDIT_WORDS:
            found.append(repr(name))
    if name_tokens(objective) & CREDIT_WORDS:
        found.append("the project's objective")
    return found


def _rules_for(name: str, credit: bool) -> list[Rule]:
    tokens = name_tokens(name)
    return [r for r in RULES if tokens & r.words and not tokens & r.unless and (credit or not r.credit_only)]


def impossible_warning(c: dict, finite: np.ndarray, credit: list[str]) -> dict | None:
    """The first rule this column breaks, as a warning (the strictest rule is checked last)."""
    rules = _rules_for(c["name"], bool(credit))
    # The adult rule is stricter than the age rule: report it when it is the one broken.
    for rule in sorted(rules, key=lambda r: not r.credit_only):
        bad = np.zeros(len(finite), dtype=bool)
        if rule.low is not None:
            bad |= finite < rule.low
        if rule.high is not None:
            bad |= finite > rule.high
        count = int(bad.sum())
        if not count:
            continue
        return _warning(c, rule, finite[bad], count / len(finite), credit)
    return None


def _warning(c: dict, rule: Rule, bad: np.ndarray, share: float, credit: list[str]) -> dict:
    name = c["name"]
    lo, hi = float(bad.min()), float(bad.max())
    bounds = (
        f"below {fmt_number(rule.low)}"
        if rule.high is None
        else f"outside {fmt_number(rule.low)} to {fmt_number(rule.high)}"
    )
    seen = f"(from {fmt_number(lo)} to {fmt_number(hi)})" if lo != hi else f"({fmt_number(lo)})"
    context = f" in what looks like credit data ({', '.join(credit[:3])})" if rule.credit_only else ""
    c["facts"].append(f"{len(bad)} impossible value(s) ({rule.name})")
    return warning(
        "impossible_values",
        name,
        "high" if share > 0.05 else "medium",
        f"{name!r} has {len(bad)} value(s) {bounds} {seen}{context}: {rule.why}, so these are recording errors "
        "(another unit? a typo?).",
        f"Check those rows at the source and correct them, or blank them (then impute {name!r}) or drop the rows "
        "before splitting. A model trained on them learns from values that cannot occur.",
        score=share,
        details={"rule": rule.name, "rows": len(bad), "low": rule.low, "high": rule.high},
    )
