from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestTooLargeMiddleware:
    """Answer 413 before anything reads a body larger than the platform accepts.

    Django itself only raises RequestDataTooBig (a 400) once the body is read; clients deserve
    the right status and the server should not read hundreds of megabytes to refuse them.
    File uploads may be up to MAX_UPLOAD_BYTES; every other body up to
    DATA_UPLOAD_MAX_MEMORY_SIZE.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        multipart = request.META.get("CONTENT_TYPE", "").startswith("multipart/")
        limit = settings.MAX_UPLOAD_BYTES if multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            return JsonResponse(
                {"detail": f"Request body is {length} bytes; the limit is {limit} bytes.", "code": "too_large"},
                status=413,
            )
        return self.get_response(request)
