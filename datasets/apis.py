"""REST API of the datasets app (SPEC section 4): thin views over services and selectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from datasets import cleaning, selectors, services
from datasets.models import Dataset, DatasetVersion, Recipe, SqlConnection, VersionStatus
from datasets.recipes import STEP_REFERENCE, RecipeError, preview
from datasets.row_apis import VersionRowsMixin
from datasets.rows import frame_rows
from datasets.split_jobs import split_request
from jobs.models import TERMINAL, Job
from mlplatform.api import ChoiceField, accepted, accepted_schema, location_header
from mlplatform.errors import InvalidInput
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


def version_job(version: DatasetVersion) -> Job | None:
    return Job.objects.filter(target_type="datasetversion", target_id=version.pk).order_by("-pk").first()


def _started(data: dict, job: Job | None, *, fallback: int = status.HTTP_201_CREATED) -> Response:
    # Every action here starts a job; `fallback` only if none was (a deployment without workers).
    return accepted(data, job) if job is not None else Response(data, status=fallback)


class VersionSummarySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "number",
            "status",
            "error",
            "source",
            "row_count",
            "column_count",
            "content_hash",
            "parent",
            "created_by",
            "created_at",
            "test_locked",
        ]
        read_only_fields = fields


class VersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    columns = serializers.SerializerMethodField()
    table = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()
    recomputing = serializers.SerializerMethodField()
    lineage = serializers.SerializerMethodField()
    source_detail = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "project",
            "dataset",
            "number",
            "status",
            "error",
            "source",
            "source_detail",
            "parent",
            "lineage",
            "created_by",
            "created_at",
            "content_hash",
            "size_bytes",
            "row_count",
            "column_count",
            "schema",
            "target_column",
            "columns",
            "table",
            "target",
            "warnings",
            "split",
            "test_locked",
            "test_used_at",
            "job",
            "recomputing",
        ]
        read_only_fields = fields

    def get_columns(self, v: DatasetVersion) -> list:
        return (v.profile or {}).get("columns", [])

    def get_table(self, v: DatasetVersion) -> dict:
        return (v.profile or {}).get("table", {})

    def get_target(self, v: DatasetVersion) -> dict | None:
        return (v.profile or {}).get("target")

    def _job(self, v: DatasetVersion) -> Job | None:
        if not hasattr(v, "_latest_job"):
            v._latest_job = version_job(v)
        return v._latest_job

    def get_job(self, v: DatasetVersion) -> dict | None:
        job = self._job(v)
        return {"id": job.pk, "kind": job.kind, "status": job.status, "progress": job.progress} if job else None

    def get_recomputing(self, v: DatasetVersion) -> bool:
        """True while a job works on a ready version (a re-profile after a new target, a split):
        its profile, warnings or split are about to change; `job` says which and how far."""
        job = self._job(v)
        return v.status == VersionStatus.READY and job is not None and job.status not in TERMINAL

    def get_source_detail(self, v: DatasetVersion) -> dict:
        return v.source_shown

    def get_lineage(self, v: DatasetVersion) -> dict:
        return {
            "source": v.source,
            "detail": v.source_shown,
            "parent_version": v.parent.number if v.parent_id and v.parent else None,
            "created_by": v.created_by.username if v.created_by else None,
        }


class DatasetSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    latest_version = serializers.SerializerMethodField()
    versions = VersionSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "project",
            "name",
            "description",
            "created_by",
            "created_at",
            "updated_at",
            "latest_version",
            "versions",
        ]
        read_only_fields = fields

    def get_latest_version(self, d: Dataset) -> dict | None:
        v = d.versions.order_by("-number").first()
        return VersionSummarySerializer(v).data if v else None


class DatasetCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    file = serializers.FileField(required=False, allow_empty_file=True)
    source_url = serializers.CharField(required=False, max_length=2000)
    connection = serializers.CharField(required=False, max_length=80)
    query = serializers.CharField(required=False, max_length=20000)

    def validate(self, attrs):
        given = [k for k in ("file", "source_url", "query") if attrs.get(k) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"file": ["Send exactly one of file, source_url, or connection + query."]}
            )
        if "query" in given and not attrs.get("connection"):
            raise serializers.ValidationError({"connection": ["A query needs a connection."]})
        return attrs


class NewVersionSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, allow_empty_file=True)
    source_url = serializers.CharField(required=False, max_length=2000)
    connection = serializers.CharField(required=False, max_length=80)
    query = serializers.CharField(required=False, max_length=20000)

    validate = DatasetCreateSerializer.validate


class RowsSerializer(serializers.Serializer):
    rows = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=100_000)


class SplitSerializer(serializers.Serializer):
    strategy = ChoiceField(choices=["random", "stratified", "group", "time"])
    test_size = serializers.FloatField(default=0.2)
    val_size = serializers.FloatField(default=0.2)
    seed = serializers.IntegerField(default=42, min_value=0, max_value=2**31 - 1)
    column = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)


class CleanSerializer(serializers.Serializer):
    steps = serializers.JSONField(required=False)
    recipe = serializers.IntegerField(required=False)

    def validate(self, attrs):
        if (attrs.get("steps") is None) == (attrs.get("recipe") is None):
            raise serializers.ValidationError({"steps": ["Send either steps or a recipe id."]})
        return attrs


class TargetSerializer(serializers.Serializer):
    target = serializers.CharField(allow_blank=True, max_length=200)


def _create_version(project, data, user, dataset=None, name=""):
    if data.get("file") is not None:
        return services.dataset_upload(
            project=project, name=name, created_by=user, upload=data["file"], dataset=dataset
        )
    if data.get("source_url") is not None:
        return services.dataset_from_url(
            project=project, name=name, created_by=user, url=data["source_url"], dataset=dataset
        )
    return services.dataset_from_sql(
        project=project,
        name=name,
        connection=data["connection"],
        query=data["query"],
        created_by=user,
        dataset=dataset,
    )


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    queryset = Dataset.objects.all()
    serializer_class = DatasetSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    filterset_fields = ["project"]
    ordering_fields = ["name", "created_at", "updated_at"]
    action_permissions = {"rows": Action.EDIT_DATA, "versions": Action.EDIT_DATA}

    def base_queryset(self):
        return Dataset.objects.prefetch_related("versions")

    @extend_schema(
        request=DatasetCreateSerializer,
        responses={202: accepted_schema(DatasetSerializer)},
        parameters=[location_header()],
    )
    def create(self, request):
        """A dataset and its first version; reading the data is a job (`Location`)."""
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project = self.project_from_body(data["project"], Action.EDIT_DATA)
        version = _create_version(project, data, request.user, name=data["name"])
        if data.get("description"):
            Dataset.objects.filter(pk=version.dataset_id).update(description=data["description"])
        dataset = Dataset.objects.prefetch_related("versions").get(pk=version.dataset_id)
        return _started(DatasetSerializer(dataset).data, version_job(version))

    @extend_schema(
        request=NewVersionSerializer,
        responses={202: accepted_schema(VersionSerializer)},
        parameters=[location_header()],
    )
    @action(detail=True, methods=["post"])
    def versions(self, request, pk=None):
        """A new version of this dataset from a file, a URL or a SQL query (read by a job)."""
        dataset = self.get_object()
        body = NewVersionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = _create_version(dataset.project, body.validated_data, request.user, dataset=dataset)
        return _started(VersionSerializer(version).data, version_job(version))

    @extend_schema(
        request=RowsSerializer, responses={202: accepted_schema(VersionSerializer)}, parameters=[location_header()]
    )
    @action(detail=True, methods=["post"])
    def rows(self, request, pk=None):
        """A new version: the latest rows plus these (row ids of earlier rows kept); profiled by a job."""
        dataset = self.get_object()
        rows = request.data.get("rows") if isinstance(request.data, dict) else None
        version = services.rows_append(dataset=dataset, rows=rows, actor=request.user)
        return _started(VersionSerializer(version).data, version_job(version))


class DatasetVersionViewSet(VersionRowsMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, ProjectScopedViewSet):
    queryset = DatasetVersion.objects.all()
    serializer_class = VersionSerializer
    filterset_fields = ["project", "dataset", "status"]
    ordering_fields = ["number", "created_at"]
    action_permissions = {"split": Action.EDIT_DATA, "target": Action.EDIT_DATA, "clean": Action.EDIT_DATA}

    def base_queryset(self):
        return DatasetVersion.objects.select_related("created_by", "parent", "dataset")

    @extend_schema(
        request=SplitSerializer, responses={202: accepted_schema(VersionSerializer)}, parameters=[location_header()]
    )
    @action(detail=True, methods=["post"])
    def split(self, request, pk=None):
        """Train / validation / locked test split, computed by a job: wait on `Location`, then read `split`."""
        version = self.get_object()
        body = SplitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = split_request(version=version, actor=request.user, **body.validated_data)
        return accepted(VersionSerializer(version).data, job)

    @extend_schema(
        request=TargetSerializer, responses={202: accepted_schema(VersionSerializer)}, parameters=[location_header()]
    )
    @action(detail=True, methods=["post"])
    def target(self, request, pk=None):
        """Choose the target column; a job profiles the version again (imbalance, leakage): until it
        is done the version says `recomputing: true`."""
        version = self.get_object()
        body = TargetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.version_set_target(version=version, target=body.validated_data["target"], actor=request.user)
        return _started(VersionSerializer(version).data, version_job(version), fallback=status.HTTP_200_OK)

    @extend_schema(
        request=CleanSerializer, responses={202: accepted_schema(VersionSerializer)}, parameters=[location_header()]
    )
    @action(detail=True, methods=["post"])
    def clean(self, request, pk=None):
        """A new version with the cleaning steps (drop_columns, drop_duplicates) applied to every row (a job)."""
        version = self.get_object()
        body = CleanSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        steps = body.validated_data.get("steps")
        if body.validated_data.get("recipe") is not None:
            steps = self.related_in_project(
                Recipe.objects.all(), body.validated_data["recipe"], version.project, "recipe"
            ).steps
        new = cleaning.version_clean(version=version, steps=steps, actor=request.user)
        return _started(VersionSerializer(new).data, version_job(new))


class RecipeSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Recipe
        fields = ["id", "project", "dataset", "name", "version", "steps", "created_by", "created_at"]
        read_only_fields = ["id", "version", "created_by", "created_at"]


class RecipeCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=120)
    steps = serializers.JSONField()
    dataset = serializers.IntegerField(required=False, allow_null=True)


class RecipePreviewSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField()
    steps = serializers.JSONField(required=False)
    rows = serializers.IntegerField(required=False, min_value=1, max_value=100, default=20)


def recipe_preview_payload(*, steps, version: DatasetVersion, rows: int = 20) -> dict:
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The version is {version.status}.", field="dataset_version")
    sample = selectors.version_sample(version, rows=1000)
    try:
        result = preview(steps or [], frame=sample, target=version.target_column, rows=rows)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    before, after = result.pop("before"), result.pop("after")
    result["before"] = {"columns": [str(c) for c in before.columns], "rows": frame_rows(before)}
    result["after"] = {"columns": [str(c) for c in after.columns], "rows": frame_rows(after)}
    result["sample_rows"] = len(sample)
    return result


class RecipeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Recipes, versioned by name: POST with an existing name saves its next version."""

    queryset = Recipe.objects.all()
    serializer_class = RecipeSerializer
    filterset_fields = ["project", "dataset", "name"]
    ordering_fields = ["name", "version", "created_at"]
    action_permissions = {"preview": Action.VIEW, "reference": Action.VIEW}

    @extend_schema(request=RecipeCreateSerializer, responses={201: RecipeSerializer})
    def create(self, request):
        body = RecipeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project = self.project_from_body(data["project"], Action.EDIT_DATA)
        dataset = None
        if data.get("dataset") is not None:
            dataset = self.related_in_project(Dataset.objects.all(), data["dataset"], project, "dataset")
        recipe = services.recipe_save(
            project=project, name=data["name"], steps=data["steps"], actor=request.user, dataset=dataset
        )
        return Response(RecipeSerializer(recipe).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RecipePreviewSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """The steps (or a saved recipe's) applied to a sample of a version: before and after."""
        body = RecipePreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from projects.access import access

        version = access(request.user, DatasetVersion, body.validated_data["dataset_version"], Action.VIEW)
        steps = body.validated_data.get("steps")
        return Response(recipe_preview_payload(steps=steps, version=version, rows=body.validated_data["rows"]))

    @action(detail=False, methods=["get"])
    def reference(self, request):
        """Every step the recipe language knows, with an example."""
        return Response(STEP_REFERENCE)


class SqlConnectionSerializer(serializers.ModelSerializer):
    """The DSN is write-only: it is never shown back, to anyone."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SqlConnection
        fields = ["id", "project", "name", "created_by", "created_at"]
        read_only_fields = fields


class SqlConnectionCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=80)
    dsn = serializers.CharField(max_length=2000, write_only=True)


class SqlConnectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    queryset = SqlConnection.objects.all()
    serializer_class = SqlConnectionSerializer
    filterset_fields = ["project"]
    ordering_fields = ["name", "created_at"]
    write_permission = Action.MANAGE_CONNECTIONS

    @extend_schema(request=SqlConnectionCreateSerializer, responses={201: SqlConnectionSerializer})
    def create(self, request):
        body = SqlConnectionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project = self.project_from_body(data["project"], Action.MANAGE_CONNECTIONS)
        conn = services.sql_connection_create(project=project, name=data["name"], dsn=data["dsn"], actor=request.user)
        return Response(SqlConnectionSerializer(conn).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        conn = self.get_object()
        services.sql_connection_delete(connection=conn, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
