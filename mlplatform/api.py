"""API plumbing shared by every app: pagination, strict query parameters, safe ordering, one
error format, and the `202 Accepted` answer of every action that starts a job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.filters import BaseFilterBackend, OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from mlplatform.errors import DomainError, InvalidInput

# Accepted on any endpoint: DRF's renderer switch.
GLOBAL_PARAMS = ("format",)
ORDERING_PARAMS = ("ordering", "sort")  # `sort` is an alias of `ordering`
_CHECKED = "_mlp_query_checked"


def valid_list(names: Iterable[str]) -> str:
    """`a, b or c`: how every error message lists the valid values."""
    items = [str(n) for n in names]
    if not items:
        return "none"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


class ChoiceField(serializers.ChoiceField):
    """A choice field whose error lists the valid values ("'magic' is not valid: use random,
    stratified, group or time"), so a client can correct itself without reading the docs."""

    def __init__(self, choices, **kwargs):
        super().__init__(choices, **kwargs)
        names = valid_list(str(k) for k in self.choices)
        self.error_messages["invalid_choice"] = (
            "{input!r} is not valid: use " + names.replace("{", "{{").replace("}", "}}") + "."
        )


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        # Paginated lists that never call filter_queryset (an action listing an audit log)
        # still refuse unknown parameters.
        if view is not None:
            query_params_check(request, view, listing=_is_list(request, view))
        return super().paginate_queryset(queryset, request, view)


def _declared_params(request, view) -> set[str]:
    """Query parameters a view documents with drf-spectacular's `extend_schema(parameters=...)`:
    the schema is the list of what an endpoint accepts (`?order=` on the review queue)."""
    from drf_spectacular.utils import OpenApiParameter

    handler = getattr(view, getattr(view, "action", None) or request.method.lower(), None)
    schema_class = getattr(handler, "kwargs", {}).get("schema") if handler is not None else None
    if schema_class is None:
        return set()
    schema = schema_class()
    schema.view = view
    schema.method = request.method
    schema.path = request.path
    try:
        parameters = schema.get_override_parameters()
    except (AttributeError, TypeError, KeyError):  # an unusual schema: fall back to the other sources
        return set()
    return {
        p.name
        for p in parameters
        if isinstance(p, OpenApiParameter) and p.location == OpenApiParameter.QUERY and not p.exclude
    }


def _filter_names(request, view) -> list[str]:
    from django_filters.rest_framework import DjangoFilterBackend

    queryset = view.get_queryset() if hasattr(view, "get_queryset") else None
    if queryset is None:
        return []
    filterset_class = DjangoFilterBackend().get_filterset_class(view, queryset)
    names = list(filterset_class.base_filters) if filterset_class is not None else []
    extra = getattr(view, "extra_filter_names", None)
    if callable(extra):
        names += list(extra(request))
    return names


def _filters_described(request, view, filters: list[str]) -> list[str]:
    """The filters as an error message lists them: a view with many generated names (a range
    per metric) describes them once (`filter_help`)."""
    extra = getattr(view, "extra_filter_names", None)
    if not callable(extra) or not getattr(view, "filter_help", None):
        return filters
    generated = set(extra(request))
    return [f for f in filters if f not in generated] + [view.filter_help]


def query_params_allowed(request, view, *, listing: bool = True) -> tuple[list[str], list[str]]:
    """(filters, other parameters) this endpoint accepts; an action that pages something other
    than the view's own list (a project's audit log) takes no filters or ordering."""
    filters = _filter_names(request, view) if listing else []
    other = list(GLOBAL_PARAMS)
    if listing and (getattr(view, "ordering_fields", None) or hasattr(view, "ordering_terms")):
        other += ORDERING_PARAMS
    paginator = getattr(view, "paginator", None)
    if paginator is not None:
        other += [
            p
            for p in (getattr(paginator, "page_query_param", None), getattr(paginator, "page_size_query_param", None))
            if p
        ]
    extra = getattr(view, "extra_query_params", None) or {}
    if isinstance(extra, dict):
        extra = extra.get(getattr(view, "action", None) or "", [])
    other += list(extra)
    other += sorted(_declared_params(request, view) - set(filters) - set(other))
    return filters, other


def query_params_check(request, view, *, listing: bool = True) -> None:
    """An unknown query parameter is a 400 listing the valid ones, never silently ignored (a
    misspelt filter would otherwise return every row as if it had matched)."""
    if getattr(request, _CHECKED, False):
        return
    setattr(request, _CHECKED, True)
    filters, other = query_params_allowed(request, view, listing=listing)
    known = set(filters) | set(other)
    unknown = [name for name in request.query_params if name not in known]
    if not unknown:
        if listing:
            _choices_check(request, view)
        return
    described = _filters_described(request, view, filters)
    valid = f"filters: {valid_list(described)}" if filters else "no filters"
    message = f"Unknown query parameter. This list accepts {valid}; and {valid_list(other)}."
    raise InvalidInput(
        f"Unknown query parameter {unknown[0]!r}. This list accepts {valid}; and {valid_list(other)}.",
        errors={name: [message] for name in unknown},
    )


def _choices_check(request, view) -> None:
    """A filter with a fixed set of values (`?status=`) refuses any other, listing the valid
    ones, instead of django-filter's "Select a valid choice"."""
    from django_filters.rest_framework import DjangoFilterBackend

    queryset = view.get_queryset() if hasattr(view, "get_queryset") else None
    filterset_class = DjangoFilterBackend().get_filterset_class(view, queryset) if queryset is not None else None
    if filterset_class is None:
        return
    for name, value in request.query_params.items():
        spec = filterset_class.base_filters.get(name)
        choices = spec.extra.get("choices") if spec is not None else None
        if callable(choices):
            choices = choices()
        if not choices or value == "":
            continue
        values = [str(c[0]) for c in choices if c[0] not in ("", None)]
        if value not in values:
            raise InvalidInput(f"Unknown {name} {value!r}: use {valid_list(values)}.", field=name)


def _is_list(request, view) -> bool:
    lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    return request.method in ("GET", "HEAD") and lookup not in (getattr(view, "kwargs", None) or {})


class StrictQueryParams(BaseFilterBackend):
    """First of the default filter backends: refuses what no other backend understands."""

    def filter_queryset(self, request, queryset, view):
        if _is_list(request, view):
            query_params_check(request, view)
        return queryset


class SafeOrderingFilter(OrderingFilter):
    """Ordering only by the fields a view lists explicitly; anything else is a 400 naming them.

    Label Studio's CVE-2023-47117 leaked password hashes through ORM lookups in query
    parameters. A view without `ordering_fields` accepts no ordering at all, and a listed
    field never contains `__`, so `?ordering=created_by__password` is refused.

    A view may add computed orderings: `ordering_terms(request) -> list[str]` names them and
    `apply_ordering(queryset, terms)` applies a validated list (runs by any metric).
    """

    def get_valid_fields(self, queryset, view, context=None):  # type: ignore[override]
        fields = getattr(view, "ordering_fields", None) or []
        return [(f, f) for f in fields if "__" not in f]

    def valid_terms(self, queryset, view, request) -> list[str]:
        terms = [name for name, _ in self.get_valid_fields(queryset, view)]
        if hasattr(view, "ordering_terms"):
            terms += [t for t in view.ordering_terms(request) if t not in terms]
        return terms

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get("ordering") or request.query_params.get("sort")
        if not raw:
            return self.get_default_ordering(view)
        valid = self.valid_terms(queryset, view, request)
        terms = [t.strip() for t in raw.split(",") if t.strip()]
        for term in terms:
            if term.lstrip("-") not in valid:
                field = "ordering" if request.query_params.get("ordering") else "sort"
                if hasattr(view, "ordering_error"):  # a view that knows better what went wrong
                    view.ordering_error(term.lstrip("-"), field)
                if not valid:
                    raise InvalidInput("This list cannot be ordered.", field=field)
                raise InvalidInput(
                    f"Unknown ordering {term.lstrip('-')!r}: order by {valid_list(valid)} "
                    "(prefix - for descending, comma-separate several).",
                    field=field,
                )
        return terms

    def filter_queryset(self, request, queryset, view):
        ordering = self.get_ordering(request, queryset, view)
        if not ordering:
            return queryset
        if hasattr(view, "apply_ordering"):
            return view.apply_ordering(queryset, list(ordering))
        return queryset.order_by(*ordering)


def accepted(data: dict[str, Any], job: Any, *, headers: dict[str, str] | None = None) -> Response:
    """`202 Accepted` for an action that started a job: the resource as before, plus `job_id`
    and a `Location` header to `/api/v1/jobs/{id}/`, whose status covers all the work started
    (child jobs included) and which a client can wait on (`?wait=`, `events/`)."""
    body = dict(data)
    body["job_id"] = job.pk
    return Response(
        body, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{job.pk}/", **(headers or {})}
    )


def accepted_schema(serializer_class: type) -> Any:
    """The OpenAPI answer of `accepted`: the serializer plus `job_id`, and the Location header."""
    from drf_spectacular.utils import OpenApiResponse
    from rest_framework import serializers

    name = f"{serializer_class.__name__.removesuffix('Serializer')}Accepted"
    cached = _ACCEPTED.get(name)
    if cached is None:
        cached = type(name, (serializer_class,), {"job_id": serializers.IntegerField(read_only=True)})
        meta = getattr(serializer_class, "Meta", None)
        if meta is not None and isinstance(getattr(meta, "fields", None), list | tuple):
            cached.Meta = type("Meta", (meta,), {"fields": [*meta.fields, "job_id"]})
        _ACCEPTED[name] = cached
    return OpenApiResponse(cached, description="Started: `Location` is the job to wait on (`?wait=`).")


_ACCEPTED: dict[str, type] = {}


def location_header() -> Any:
    from drf_spectacular.utils import OpenApiParameter

    return OpenApiParameter(
        "Location",
        str,
        location=OpenApiParameter.HEADER,
        response=[202],
        description="The job started by this action: /api/v1/jobs/{id}/",
    )


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _first_message(errors: Any) -> str:
    if isinstance(errors, dict):
        for key, value in errors.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error is `{"detail": str, "code": str, "errors": {field: [msg]}?}`."""
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.errors:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if isinstance(errors, list):
            errors = {"non_field_errors": errors}
        response.data = {"detail": _first_message(errors), "code": "invalid", "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        response.data = {
            "detail": str(detail if not isinstance(detail, dict) else _first_message(detail)),
            "code": code if isinstance(code, str) else "error",
        }
    return response
