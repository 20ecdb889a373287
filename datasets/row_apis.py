"""`GET /dataset-versions/{id}/rows/` and `.../export/`: a version's rows read back, with row ids,
the split as a filter and cursor pages; the train / validation part exported as CSV or Parquet.

Both read only what they need (datasets.rows): a page touches the row groups that hold it; an
export streams one row group at a time, so neither holds a whole version in memory.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from datasets import rows as r
from datasets.models import DatasetVersion, VersionStatus
from datasets.selectors import split_assignment
from mlplatform.errors import InvalidInput, PermissionDenied

ROWS_PARAMS = ["cursor", "page", "page_size", "split", "columns", "format"]
EXPORT_PARAMS = ["split", "columns", "meta", "format"]


class RowsPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Visible rows matching the filter (never the locked test rows).")
    page = serializers.IntegerField(allow_null=True)
    page_size = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.ListField())
    row_ids = serializers.ListField(child=serializers.IntegerField())
    split = serializers.ListField(child=serializers.CharField(), allow_null=True)
    test_rows_hidden = serializers.BooleanField()
    next = serializers.CharField(allow_null=True)


def _only(request, allowed: list[str]) -> None:
    unknown = [k for k in request.query_params if k not in allowed]
    if unknown:
        message = f"Unknown query parameter; this endpoint accepts {', '.join(allowed)}."
        raise InvalidInput(
            f"Unknown query parameter {unknown[0]!r}: use {', '.join(allowed)}.",
            errors={name: [message] for name in unknown},
        )


def _ready(version: DatasetVersion) -> None:
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}; its rows can be read once it is ready.", field="version")


def _part(request, version: DatasetVersion) -> int | None:
    try:
        return r.parse_split(request.query_params.get("split"), has_split=bool(version.split_key))
    except r.TestRowsLocked as exc:
        raise PermissionDenied(str(exc), field=exc.field) from None
    except r.RowsError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


def _columns(request, version: DatasetVersion) -> list[str] | None:
    try:
        return r.check_columns(request.query_params.get("columns"), [c["name"] for c in version.schema or []])
    except r.RowsError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}; got {raw!r}.", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be from {low} to {high}; got {value}.", field=name)
    return value


class CsvExportRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # pragma: no cover - errors are JSON
        return renderers.JSONRenderer().render(data)


class ParquetExportRenderer(CsvExportRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"
    charset = None


EXPORT_RENDERERS = [CsvExportRenderer, ParquetExportRenderer]


class VersionRowsMixin:
    """The read-back actions of DatasetVersionViewSet (VIEW access: any member)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, description="From the `next` link of the previous page."),
            OpenApiParameter("page", int, description="Page number (the older way; `cursor` is stable under appends)."),
            OpenApiParameter("page_size", int, description="1 to 500 rows, 50 by default."),
            OpenApiParameter("split", str, enum=["train", "validation"], description="Only this part of the split."),
            OpenApiParameter("columns", str, description="Comma-separated columns (all by default)."),
        ],
        responses=RowsPageSerializer,
    )
    @action(detail=True, methods=["get"])
    def rows(self, request, pk=None):
        """Rows with their stable `row_ids` and split part; the locked test rows are never shown."""
        version = self.get_object()
        _only(request, ROWS_PARAMS)
        _ready(version)
        part = _part(request, version)
        columns = _columns(request, version)
        size = _int_param(request, "page_size", 50, 1, r.MAX_PAGE)
        cursor, page = request.query_params.get("cursor"), None
        if cursor is not None and "page" in request.query_params:
            raise InvalidInput("Send cursor or page, not both.", field="cursor")
        if cursor is not None:
            try:
                start = r.decode_cursor(cursor)
            except r.RowsError as exc:
                raise InvalidInput(str(exc), field=exc.field) from None
            result = _page(version, part, size, columns, start_row_id=start)
        elif "page" in request.query_params:  # the older numbered pages, kept for existing callers
            page = _int_param(request, "page", 1, 1, 10**9)
            result = _page(version, part, size, columns, offset=(page - 1) * size)
        else:
            result = _page(version, part, size, columns, start_row_id=0)
        following = None
        if result.next_row_id is not None:
            query = {k: v for k, v in request.query_params.items() if k not in ("cursor", "page")}
            query.update({"page": page + 1} if page is not None else {"cursor": r.encode_cursor(result.next_row_id)})
            following = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
        return Response(
            {
                "count": result.count,
                "page": page,
                "page_size": size,
                "columns": result.columns,
                "rows": r.frame_rows(result.frame),
                "row_ids": [int(i) for i in result.row_ids],
                "split": [r.PART_NAMES[int(p)] for p in result.parts] if result.parts is not None else None,
                "test_rows_hidden": bool(version.split_key),
                "next": following,
            }
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "parquet"], description="csv (default) or parquet."),
            OpenApiParameter("split", str, enum=["train", "validation"], description="Only this part of the split."),
            OpenApiParameter("columns", str, description="Comma-separated columns (all by default)."),
            OpenApiParameter("meta", bool, description="Add `_row_id` and `_split` as the first two columns."),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=EXPORT_RENDERERS)
    def export(self, request, pk=None):
        """The train / validation rows as CSV (every cell and header safe against formula
        injection) or Parquet, streamed. The locked test rows are never exported."""
        version = self.get_object()
        _only(request, EXPORT_PARAMS)
        _ready(version)
        part = _part(request, version)
        columns = _columns(request, version)
        meta = request.query_params.get("meta", "0").lower() in ("1", "true", "yes")
        if meta and {"_row_id", "_split"} & {c["name"] for c in version.schema or []}:
            raise InvalidInput("The data has a column named _row_id or _split; export without meta.", field="meta")
        assignment = split_assignment(version) if version.split_key else None
        batches = r.visible_batches(version.storage_key, assignment, part, columns, with_meta=meta)
        fmt = request.accepted_renderer.format
        if fmt == "parquet":
            schema = r.export_schema(version.storage_key, columns, with_meta=meta)
            body, content_type = r.export_parquet(batches, schema), "application/vnd.apache.parquet"
        else:
            body, content_type = r.export_csv(batches), "text/csv; charset=utf-8"
        suffix = f"-{request.query_params['split']}" if part is not None else ""
        response = StreamingHttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="dataset-{version.dataset_id}-v{version.number}{suffix}.{fmt}"'
        )
        return response

    def perform_content_negotiation(self, request, force=False):
        if getattr(self, "action", None) == "export":
            fmt = request.query_params.get("format")
            if fmt is not None and fmt not in ("csv", "parquet"):
                if force:  # rendering the error below: JSON
                    return renderers.JSONRenderer(), "application/json"
                raise InvalidInput(f"Unknown format {fmt!r}: use csv or parquet.", field="format")
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors of the export are JSON like every other error, whatever format was asked for.
        if getattr(self, "action", None) == "export" and isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = renderers.JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


def _page(version: DatasetVersion, part, size, columns, **where) -> r.RowPage:
    assignment = split_assignment(version) if version.split_key else None
    return r.rows_page(
        key=version.storage_key,
        assignment=assignment,
        n_rows=int(version.row_count or 0),
        part=part,
        size=size,
        columns=columns,
        **where,
    )
