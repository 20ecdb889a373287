"""Serve plotly.js from the installed plotly package as our own static file (no CDN).

`{% static 'vendor/plotly.min.js' %}` resolves to the copy shipped inside the Python package,
so the browser never loads code from a third-party host and the version matches plotly.py.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

_FILES = {"vendor/plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js"}


class VendorFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        match = _FILES.get(path)
        if match is None or not match.exists():
            return [] if find_all else None
        return [str(match)] if find_all else str(match)

    def list(self, ignore_patterns):
        for path, real in _FILES.items():
            storage = FileSystemStorage(location=str(real.parent))
            storage.prefix = str(Path(path).parent)
            yield real.name, storage
