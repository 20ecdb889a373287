from __future__ import annotations

from functools import cache

from django.contrib.staticfiles import finders
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database reachability, for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception as exc:  # noqa: BLE001 - report any database failure as unhealthy
        return JsonResponse({"status": "error", "detail": type(exc).__name__}, status=503)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if exception and str(exception) else "You do not have permission to do this."
    if _wants_json(request):
        return JsonResponse({"detail": message, "code": "permission_denied"}, status=403)
    return render(request, "errors/403.html", {"message": message}, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return render(request, "errors/404.html", status=404)


@cache
def _favicon_bytes() -> bytes | None:
    path = finders.find("favicon.ico")
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """`/favicon.ico`, which browsers and bookmarks ask for whatever the pages link."""
    data = _favicon_bytes()
    if data is None:
        raise Http404
    response = HttpResponse(data, content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
