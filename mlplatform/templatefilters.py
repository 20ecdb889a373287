"""Template filters and tags every page may use without `{% load %}` (TEMPLATES "builtins").

Numbers are rounded for reading: `num` keeps significant digits with thousands separators,
`metric` shows rates as percentages, `ago` says "just now" rather than "0 minutes ago",
`pairs` / `readable` turn stored dicts and lists into text a person reads, `icon` draws an
inline SVG icon (the machines we run on have no emoji font: emoji render as empty boxes).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

register = template.Library()

# Metrics that are shares of rows: shown as percentages. F1, ROC AUC and R² are scores in the
# same range but not shares of anything, so they stay decimals.
RATE_METRICS = frozenset({"accuracy", "balanced_accuracy", "precision", "recall", "mape"})
DASH = "—"


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_number(value: Any, digits: int = 4) -> str:
    """12345.678 -> "12,346"; 0.912345 -> "0.9123"; 3 -> "3"; 1.5e-06 -> "1.5e-06"."""
    number = _number(value)
    if number is None:
        return DASH if value is None or value == "" or isinstance(value, float) else str(value)
    if number == 0:
        return "0"
    if float(number).is_integer() and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 10**digits:
        return f"{number:,.0f}"
    text = f"{number:,.{digits}g}"
    return "0" if text in ("-0", "0") else text


@register.filter
def num(value: Any, digits: int = 4) -> str:
    return format_number(value, int(digits))


# Decimals worth rounding: four or more decimal places, or a float whose integer part has four
# or more digits ("111300.0"). Integers are left alone (years, ids, versions).
_LONG_DECIMAL = re.compile(r"(?<![\w.])-?(?:\d+\.\d{4,}|\d{4,}\.\d+)(?:e[-+]?\d+)?(?!\w|\.\d)")
_DICT_REPR = re.compile(r"\{'[^{}]*\}")


def _dict_text(match: re.Match) -> str:
    try:
        value = ast.literal_eval(match.group(0))  # literals only: never evaluates code
    except (ValueError, SyntaxError):
        return match.group(0)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    return readable_text(value) if isinstance(value, dict) else match.group(0)


@register.filter
def tidy_numbers(value: Any) -> str:
    """A sentence made elsewhere, for reading: long decimals rounded ("(0.8214056776556776 to
    1.0)" reads "(0.821 to 1.0)") and a Python dict printed inside it ("verdict: {'text': ...}")
    replaced by its text."""
    text = _DICT_REPR.sub(_dict_text, str(value if value is not None else ""))
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", text)  # a quoted sentence's period before the outer one
    return _LONG_DECIMAL.sub(lambda m: format_number(float(m.group(0)), 3), text)


@register.filter
def percent(value: Any, decimals: int = 1) -> str:
    """0.9123 -> "91.2%"."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{number * 100:.{int(decimals)}f}%"


def is_rate(metric_name: str) -> bool:
    return str(metric_name) in RATE_METRICS


@register.filter
def metric(value: Any, name: str = "") -> str:
    """A metric value for reading: rates as percentages, other scores with 3 significant digits
    (the fourth is below the cross-validation noise of any dataset we train on)."""
    if _number(value) is None:
        return DASH
    return percent(value) if is_rate(name) else format_number(value, 3)


@register.filter
def ago(value: Any) -> str:
    """A time relative to now: "just now", "5 minutes ago", "in 2 hours"."""
    if not isinstance(value, dt.datetime):
        return DASH
    now = timezone.now()
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    seconds = (now - value).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    if seconds < 0:
        return "in " + timeuntil(value, now, depth=1)
    return timesince(value, now, depth=1) + " ago"


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_TRACEBACK = "Traceback (most recent call last):"
_EXC_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning|Failure)\s*:\s*")
# scikit-learn's advice to developers inside "All the N fits failed" messages.
_NOISE = ("It is very likely that your model", "You can try to debug", "Below are more details", "----")


def user_error_text(value: Any) -> str:
    """An error message for people: no Python traceback, no exception class name in front.

    Error fields store what the worker caught; some messages (scikit-learn's "All the fits
    failed") embed whole tracebacks. Owners read the traceback on the job page; everyone
    else gets the sentence and the cause.
    """
    text = str(value or "").strip()
    if not text:
        return ""
    cause = ""
    if _TRACEBACK in text:
        head, _, rest = text.partition(_TRACEBACK)
        lines = [line.strip() for line in rest.splitlines() if line.strip()]
        cause = _EXC_PREFIX.sub("", lines[-1]) if lines else ""
        text = head
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(_NOISE)]
    lines = [line for line in lines if not re.match(r"^\d+ fits? failed with the following error:$", line)]
    message = " ".join(_EXC_PREFIX.sub("", line) for line in lines).strip()
    if cause and cause not in message:
        message = f"{message.rstrip('.:')}: {cause}" if message else cause
    return message


@register.filter
def user_error(value: Any) -> str:
    return user_error_text(value)


@register.filter
def tojson(value: Any) -> str:
    """JSON for an HTML attribute (`data-x="{{ v|tojson }}"`): autoescaping escapes the quotes and
    the browser unescapes them, so the attribute holds the JSON text."""
    return json.dumps(value, default=str)


@register.filter
def iso(value: Any) -> Any:
    """An ISO 8601 string stored in JSON as a datetime, for `|date` and `|ago`."""
    if isinstance(value, dt.datetime) or not value:
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return value


def _label(key: Any) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def readable_text(value: Any, *, depth: int = 0) -> str:
    """A stored value as a line of text: dicts as `key: value` pairs, lists joined by commas."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, dict | list | tuple) and not value:
        return "none"
    if isinstance(value, str) and _ISO.match(value):
        moment = iso(value)
        if isinstance(moment, dt.datetime):
            return (
                timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
                if timezone.is_aware(moment)
                else moment.strftime("%Y-%m-%d %H:%M")
            )
    if isinstance(value, dict):
        if depth >= 2:
            return f"{len(value)} fields"
        items = [(str(k).replace("_", " "), readable_text(v, depth=depth + 1)) for k, v in value.items()]
        if not items:
            return DASH
        if depth == 0:
            return "; ".join(f"{_label(k)}: {v}" for k, v in items)
        return "(" + ", ".join(f"{k}: {v}" for k, v in items) + ")"
    if isinstance(value, list | tuple):
        if depth >= 2:
            return f"{len(value)} items"
        shown = [readable_text(v, depth=depth + 1) for v in value[:20]]
        more = f" and {len(value) - 20} more" if len(value) > 20 else ""
        return ", ".join(shown) + more if shown else DASH
    return str(value)


@register.filter
def readable(value: Any) -> str:
    return readable_text(value)


@register.filter
def pairs(value: Any) -> list[tuple[str, str]]:
    """A dict as (label, text) rows for a `<dl>`; anything else as one unlabelled row."""
    if isinstance(value, dict):
        return [(_label(k), readable_text(v, depth=1)) for k, v in value.items()]
    if value in (None, "", [], {}):
        return []
    return [("", readable_text(value))]


# 24x24 outline icons (stroke = currentColor), drawn for this project.
ICONS: dict[str, str] = {
    "lock": '<rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
    "star": '<path d="M12 3l2.7 5.6 6.1.9-4.4 4.3 1 6.1L12 17l-5.4 2.9 1-6.1-4.4-4.3 6.1-.9z"/>',
    "check": '<path d="M5 12.5l4.5 4.5L19 7.5"/>',
    "cross": '<path d="M6 6l12 12M18 6L6 18"/>',
    "alert": '<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18h.01"/>',
    "bell": '<path d="M6 16V11a6 6 0 0 1 12 0v5l2 2H4z"/><path d="M10 21h4"/>',
    "inbox": '<path d="M3 13l3-8h12l3 8v6H3z"/><path d="M3 13h5l1 3h6l1-3h5"/>',
    "menu": '<path d="M4 7h16M4 12h16M4 17h16"/>',
    "chevron-left": '<path d="M15 5l-7 7 7 7"/>',
    "chevron-right": '<path d="M9 5l7 7-7 7"/>',
    "pin": '<path d="M9 4h6l-1 6 3 3H7l3-3z"/><path d="M12 13v7"/>',
    "copy": '<rect x="8" y="8" width="12" height="12" rx="2"/><path d="M16 8V5a1 1 0 0 0-1-1H5a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h3"/>',
    "arrow-right": '<path d="M5 12h14M13 6l6 6-6 6"/>',
}


@register.simple_tag
def icon(name: str, label: str = "") -> SafeString:
    """`{% icon "lock" %}` (decorative) or `{% icon "lock" "Locked" %}` (announced)."""
    body = mark_safe(ICONS[name])  # noqa: S308 - constant markup of this module, no user data
    if label:
        return format_html('<svg class="icon" viewBox="0 0 24 24" role="img" aria-label="{}">{}</svg>', label, body)
    return format_html('<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">{}</svg>', body)
