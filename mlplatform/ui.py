"""The UI helpers that turn domain errors into form errors, messages or a plain-text answer."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse

from mlplatform.errors import DomainError, Gone


def report(request: HttpRequest, exc: DomainError, form: forms.Form | None = None) -> None:
    if form is not None and exc.field and exc.field in form.fields:
        form.add_error(exc.field, exc.message)
    elif form is not None:
        form.add_error(None, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    else:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)


def gone_as_text(check, obj) -> HttpResponse | None:
    """`check(obj)` raising Gone (a file retention deleted) as the browser's 410 with the API's
    reason in plain text; None when the file is still there."""
    try:
        check(obj)
    except Gone as exc:
        return HttpResponse(exc.message, status=410, content_type="text/plain")
    return None
