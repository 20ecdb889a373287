"""JSON from strangers: a nesting limit everywhere, checked before any parser recurses.

Python's JSON decoder recurses once per nested array or object: 50,000 `[` in a request body
made every endpoint answer 500 (RecursionError), and a JSON-lines upload nested 5,000 deep
crashed its job. Here:
- `nesting_depth(data)` measures the deepest nesting of arrays and objects *outside strings*
  without recursing (vectorised over 1 MB chunks, linear in the size);
- `loads(data)` refuses anything deeper than `MAX_JSON_DEPTH` with `JSONTooDeep` (a
  ValueError), and turns a RecursionError into one too;
- `JsonDepthMiddleware` answers 400 to any request body (JSON or not: some views decode
  whatever they get) and any form field nested deeper than the limit, before a view or a DRF
  parser sees it, and turns a RecursionError escaping any view (a JSON string in a multipart
  field, decoded by a serializer) into the same 400; `SafeJSONParser` is DRF's parser with the
  same check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
QUOTE, BACKSLASH = 34, 92
OPENERS, CLOSERS = (91, 123), (93, 125)  # [ {  and  ] }


class JSONTooDeep(ValueError):
    def __init__(self, depth: int, limit: int):
        super().__init__(f"The JSON is nested {depth} levels deep; the limit is {limit} (MAX_JSON_DEPTH).")
        self.depth, self.limit = depth, limit


def _limit(max_depth: int | None) -> int:
    return int(max_depth if max_depth is not None else settings.MAX_JSON_DEPTH)


def nesting_depth(data: bytes | str) -> int:
    """The deepest nesting of [ and { outside JSON strings (exact for valid JSON, and for the
    valid prefix a decoder reads before it stops at a syntax error)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    depth = deepest = 0
    in_string = False
    backslashes = 0  # the run of backslashes that ended the previous chunk
    for start in range(0, len(raw), CHUNK):
        a = np.frombuffer(raw, dtype=np.uint8, count=min(CHUNK, len(raw) - start), offset=start)
        quotes = a == QUOTE
        is_bs = a == BACKSLASH
        if backslashes or is_bs.any():
            # Backslashes ending at i (0 when a[i] is not one); a quote after an odd run is escaped.
            idx = np.arange(len(a), dtype=np.int32)
            last_other = np.maximum.accumulate(np.where(is_bs, np.int32(-1), idx))
            run = np.where(last_other >= 0, idx - last_other, idx + 1 + backslashes)
            before = np.empty_like(run)
            before[0] = backslashes
            before[1:] = run[:-1]
            quotes &= before % 2 == 0
            backslashes = int(run[-1])
        # Inside a string from an opening quote to its closing one (escaping only exists inside
        # strings; outside, a backslash stops the decoder before it could recurse further).
        inside = (np.cumsum(quotes, dtype=np.int32) + int(in_string)) & 1
        outside = inside == 0
        step = ((a == 91) | (a == 123)).view(np.int8) - ((a == 93) | (a == 125)).view(np.int8)
        levels = np.cumsum(step * outside, dtype=np.int32) + depth
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
        in_string = bool(inside[-1])
    return deepest


def check_depth(data: bytes | str, *, max_depth: int | None = None) -> None:
    limit = _limit(max_depth)
    text = data if isinstance(data, bytes | bytearray | memoryview) else str(data).encode("utf-8", "surrogatepass")
    if bytes(text).count(b"[") + bytes(text).count(b"{") <= limit:  # cannot be deeper: the common case
        return
    depth = nesting_depth(text)
    if depth > limit:
        raise JSONTooDeep(depth, limit)


def loads(data: bytes | str, *, max_depth: int | None = None, **kwargs: Any) -> Any:
    """json.loads with the nesting limit; every failure is a ValueError."""
    check_depth(data, max_depth=max_depth)
    try:
        return json.loads(data, **kwargs)
    except RecursionError:
        raise JSONTooDeep(_limit(max_depth) + 1, _limit(max_depth)) from None


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the nesting limit (400, never a RecursionError)."""

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[override]
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            return loads(raw.decode(encoding) if raw else "", parse_constant=_no_constant)
        except JSONTooDeep as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"Invalid JSON constant {name}")


def _too_deep(message: str) -> JsonResponse:
    return JsonResponse({"detail": message, "code": "invalid", "errors": {"body": [message]}}, status=400)


class JsonDepthMiddleware:
    """400 for a request whose body, or any form field, nests deeper than MAX_JSON_DEPTH.

    Runs after RequestTooLargeMiddleware (bodies are bounded). Multipart bodies are left to the
    views (their files are data, checked by the ingest limits); everything else is checked,
    whatever its content type, since some views decode JSON from any body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            content_type = request.META.get("CONTENT_TYPE", "")
            if not content_type.startswith("multipart/"):
                try:
                    body = request.body
                    check_depth(body)
                    if content_type.startswith("application/x-www-form-urlencoded"):
                        for values in request.POST.lists():
                            for value in values[1]:
                                check_depth(value)
                except JSONTooDeep as exc:
                    return _too_deep(str(exc))
                except Exception:  # noqa: BLE001, S110 - an unreadable body is the view's to refuse, as before
                    pass
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The backstop: input nested deeper than anything checked above (a JSON string in a
        multipart field, decoded by a serializer) still ends in a 400, never a 500."""
        if isinstance(exception, RecursionError):
            logger.warning("RecursionError in %s %s: answered 400", request.method, request.path, exc_info=True)
            return _too_deep(f"The input is nested too deeply; the limit is {_limit(None)} levels (MAX_JSON_DEPTH).")
        return None
