"""The nesting measure the JSON guard relies on: exact, whatever strings and escapes hold."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplatform import jsonguard

TEXT = st.text(alphabet='[]{}"\\ab\n,:', max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=40,
)


def reference_depth(text: str) -> int:
    """The decoder's view, one character at a time."""
    depth = deepest = 0
    inside = escaped = False
    for ch in text:
        if inside:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                inside = False
        elif ch == '"':
            inside = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_nesting_depth_is_exact_across_chunk_boundaries(chunk, value):
    text = json.dumps(value)
    old, jsonguard.CHUNK = jsonguard.CHUNK, chunk
    try:
        assert jsonguard.nesting_depth(text) == reference_depth(text)
    finally:
        jsonguard.CHUNK = old


def test_loads_refuses_deep_input_and_never_recurses_out():
    with pytest.raises(jsonguard.JSONTooDeep, match="MAX_JSON_DEPTH"):
        jsonguard.loads("[" * 50_000 + "]" * 50_000, max_depth=64)
    assert jsonguard.loads('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', max_depth=2)
    assert jsonguard.loads("[" * 64 + "]" * 64, max_depth=64) is not None
