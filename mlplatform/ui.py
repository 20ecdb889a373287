"""The one UI helper that turns domain errors into form errors or messages."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest

from mlplatform.errors import DomainError


def report(request: HttpRequest, exc: DomainError, form: forms.Form | None = None) -> None:
    if form is not None and exc.field and exc.field in form.fields:
        form.add_error(exc.field, exc.message)
    elif form is not None:
        form.add_error(None, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    else:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
