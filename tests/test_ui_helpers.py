"""Template helpers every page uses (numbers, times, stored data, errors) and the rules that keep
the templates compatible with the Content-Security-Policy."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.utils import timezone

from mlplatform import templatefilters as f

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (12345.678, 4, "12,346"),
        (0.912345, 4, "0.9123"),
        (3, 4, "3"),
        (1_234_567, 4, "1,234,567"),
        (2.0, 4, "2"),
        (-0.0, 4, "0"),
        (0.0000123, 3, "1.23e-05"),
        (None, 4, "—"),
        (float("nan"), 4, "—"),
        ("north", 4, "north"),
    ],
)
def test_num_rounds_to_significant_digits_with_separators(value, digits, expected):
    assert f.format_number(value, digits) == expected


def test_rates_read_as_percentages_and_scores_as_three_digits():
    assert f.metric(0.91234, "accuracy") == "91.2%"
    assert f.metric(0.91234, "recall") == "91.2%"
    assert f.metric(0.91234, "f1") == "0.912"
    assert f.metric(23456.78, "rmse") == "23,457"
    assert f.metric(None, "f1") == "—"
    assert f.percent(0.5, 0) == "50%"


def test_ago_says_just_now_rather_than_zero_minutes():
    now = timezone.now()
    assert f.ago(now - dt.timedelta(seconds=20)) == "just now"
    assert f.ago(now - dt.timedelta(minutes=5, seconds=3)).replace("\xa0", " ") == "5 minutes ago"
    assert f.ago(now + dt.timedelta(hours=2, minutes=1)).replace("\xa0", " ") == "in 2 hours"
    assert f.ago(None) == "—"


def test_stored_data_reads_as_text_never_as_a_python_dict():
    data = {
        "run": 7,
        "algorithms": ["a", "b"],
        "gate": {"passed": True, "reasons": []},
        "at": "2026-01-02T03:04:05+00:00",
    }
    text = f.readable_text(data)
    assert "{" not in text and "'" not in text and "True" not in text
    assert "Algorithms: a, b" in text and "passed: yes" in text and "reasons: none" in text
    assert f.pairs({"object_repr": "x"}) == [("Object repr", "x")]


def test_sentences_made_elsewhere_lose_long_decimals_and_dict_reprs():
    text = "Live f1 0.625 is below the test interval (0.8214056776556776 to 1.0); verdict: {'text': 'Beats it.', 'metric': 'f1'}."
    assert f.tidy_numbers(text) == "Live f1 0.625 is below the test interval (0.821 to 1.0); verdict: Beats it."
    assert f.tidy_numbers("version 2024, v1.2.3") == "version 2024, v1.2.3"


def test_user_errors_show_no_traceback_and_no_exception_class():
    sklearn_message = (
        "All the 3 fits failed.\nIt is very likely that your model is misconfigured.\n"
        "You can try to debug the error by setting error_score='raise'.\n\nBelow are more details about the failures:\n"
        "-----\n3 fits failed with the following error:\nTraceback (most recent call last):\n"
        '  File "/x/sklearn/model_selection/_validation.py", line 859, in _fit_and_score\n'
        "ValueError: Input X contains NaN.\n"
    )
    assert f.user_error_text(sklearn_message) == "All the 3 fits failed: Input X contains NaN."
    assert f.user_error_text("KeyError: 'income'") == "'income'"
    assert f.user_error_text("The file has no header row.") == "The file has no header row."


def test_icons_are_inline_svg_with_an_accessible_name_when_labelled():
    html = Template('{% icon "lock" %}{% icon "check" "passed" %}').render(Context())
    assert html.count("<svg") == 2 and 'aria-hidden="true"' in html and 'aria-label="passed"' in html


def _templates() -> list[Path]:
    found = [p for p in ROOT.glob("*/templates/**/*.html") if ".venv" not in p.parts]
    return found + list((ROOT / "templates").glob("**/*.html"))


def test_templates_have_no_inline_script_style_or_event_handler():
    """Under the CSP, an inline <script> runs only with the nonce, `style=""` and `onclick=""`
    never do: templates keep all of it in static files."""
    offenders = []
    for path in _templates():
        text = path.read_text()
        for m in re.finditer(r"<script(?![^>]*\b(src|nonce|type=\"application/json\")\b)[^>]*>", text):
            offenders.append(f"{path.relative_to(ROOT)}: inline {m.group(0)}")
        for m in re.finditer(r"<style(?![^>]*\bnonce=)[^>]*>", text):
            offenders.append(f"{path.relative_to(ROOT)}: {m.group(0)} without nonce")
        for m in re.finditer(r"\s(style|on[a-z]+)=[\"']", text):
            offenders.append(f"{path.relative_to(ROOT)}: attribute {m.group(1)}=")
    assert not offenders, "\n".join(offenders)


def test_every_response_carries_the_policy_with_a_fresh_nonce(client, db):
    first = client.get("/login/")
    second = client.get("/login/")
    api = client.get("/api/v1/projects/")
    for response in (first, second, api):
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = re.search(r"'nonce-([^']+)'", first["Content-Security-Policy"]).group(1)
    assert nonce not in second["Content-Security-Policy"]
    assert len(nonce) >= 22


def test_favicon_is_served(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
