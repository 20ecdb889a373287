"""The registry's widget on other apps' pages: a run page's "Register this model" card.

A tag rather than a view context: `experiments` sits below `deployments` in the layers and cannot
import it; its run page asks the registry for the card instead. The caller has already checked
that the user may see the run.
"""

from __future__ import annotations

from typing import Any

from django import template

from deployments.registry.selectors import run_registration as _run_registration

register = template.Library()


@register.simple_tag
def run_registration(run) -> dict[str, Any]:
    return _run_registration(run)
