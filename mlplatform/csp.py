"""Content-Security-Policy on every response, with a fresh nonce per request.

Scripts: our own static files and the `<script nonce="{{ csp_nonce }}">` blocks a template marks;
no inline event handlers, no `eval`. Plotly's WebGL traces (`scattergl`) compile code with
`Function()` and would need `'unsafe-eval'`, so the charts use SVG traces only.

Styles: our stylesheets and nonce-marked `<style>` blocks; no `'unsafe-inline'` at all, not
even for `style=""` attributes. What plotly.js 4 needs for that (checked in Chromium):
- its global rules, which it would inject in a `<style>` element: served as
  `static/vendor/plotly.css`, linked with `id="plotly.js-style-global" class="no-inline-styles"`,
  the marker plotly looks for before injecting anything;
- about three `setAttribute("style", ...)` calls per chart (d3's `.attr("style")` on the
  colour bar and the heatmap image): `static/js/csp-style.js`, loaded before plotly, turns them
  into CSSOM writes (`el.style.cssText`), which CSP does not govern. That adds nothing an
  attacker can use: only scripts we already trust run, and they may write CSSOM anyway; style
  attributes in markup (what an injection would bring) stay blocked.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy(nonce: str) -> str:
    directives = [
        ("default-src", "'self'"),
        ("script-src", f"'self' 'nonce-{nonce}'"),
        ("style-src", f"'self' 'nonce-{nonce}'"),
        # data: for plotly's heatmap images and Swagger UI's icons; blob: for chart downloads.
        ("img-src", "'self' data: blob:"),
        ("font-src", "'self'"),
        ("connect-src", "'self'"),
        ("object-src", "'none'"),
        ("base-uri", "'self'"),
        ("frame-ancestors", "'none'"),
        ("form-action", "'self'"),
    ]
    return "; ".join(f"{name} {value}" for name, value in directives)


class ContentSecurityPolicyMiddleware:
    """Sets `request.csp_nonce` (templates read it as `csp_nonce`) and the CSP header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(18)
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy(request.csp_nonce)
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Context processor: `{{ csp_nonce }}` in every template rendered with a request."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
