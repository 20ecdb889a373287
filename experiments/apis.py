from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers
from rest_framework import status as http_status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.models import DatasetVersion, Recipe
from experiments import external, run_queries, selectors, services
from experiments.ml import catalogue
from experiments.ml.metrics import metric_names
from experiments.models import Experiment, Run
from jobs.models import Job
from mlplatform.api import ChoiceField, accepted, accepted_schema, location_header, valid_list
from mlplatform.errors import InvalidInput
from projects.access import scope
from projects.models import Project
from projects.roles import Action
from projects.viewsets import ProjectScopedViewSet


class RunSerializer(serializers.ModelSerializer):
    fit = serializers.SerializerMethodField()
    is_baseline = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "experiment",
            "algorithm",
            "params",
            "trial_number",
            "kind",
            "members",
            "status",
            "error",
            "score",
            "cv_metrics",
            "train_metrics",
            "fit",
            "is_baseline",
            "fit_seconds",
            "predict_seconds",
            "model_size_bytes",
            "external",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_fit(self, run: Run) -> str:
        return selectors.fit_verdict(run, run.experiment.metric)

    def get_is_baseline(self, run: Run) -> bool:
        """Baselines are references to beat, never the best candidate."""
        return run.kind == selectors.BASELINE


class RunDetailSerializer(RunSerializer):
    diagnostics_status = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "diagnostics", "diagnostics_status", "final_artifact_sha256"]
        read_only_fields = fields

    def get_diagnostics_status(self, run: Run) -> str:
        if run.diagnostics:
            return "ready"
        return run.diagnostics_job.status if run.diagnostics_job else "not_requested"


class ExperimentSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    evaluated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "project",
            "name",
            "dataset_version",
            "target",
            "task_type",
            "metric",
            "positive_class",
            "recipe",
            "recipe_steps",
            "cv_folds",
            "cv_strategy",
            "algorithms",
            "search",
            "status",
            "progress",
            "error",
            "job",
            "parent",
            "evaluated_run",
            "evaluation_job",
            "test_evaluation",
            "evaluated_at",
            "evaluated_by",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ExperimentDetailSerializer(ExperimentSerializer):
    runs = serializers.SerializerMethodField()
    baselines = serializers.SerializerMethodField()
    best_run = serializers.SerializerMethodField()
    ranking_metric = serializers.SerializerMethodField()

    class Meta(ExperimentSerializer.Meta):
        fields = [*ExperimentSerializer.Meta.fields, "runs", "baselines", "best_run", "ranking_metric"]
        read_only_fields = fields

    def get_best_run(self, experiment: Experiment) -> int | None:
        """The best candidate (never a baseline) by the ranking metric: what the UI pre-selects."""
        best = selectors.best_candidate(experiment)
        return best.pk if best else None

    def get_ranking_metric(self, experiment: Experiment) -> str:
        return selectors.ranking_metric(experiment)

    def get_runs(self, experiment: Experiment) -> list:
        sort = self.context.get("sort")
        runs = selectors.leaderboard(experiment, sort=sort)
        if self.context.get("reverse"):
            ranked = [
                r for r in runs if ((r.cv_metrics or {}).get(sort or experiment.metric) or {}).get("mean") is not None
            ]
            runs = ranked[::-1] + [r for r in runs if r not in ranked]
        for r in runs:
            r.experiment = experiment
        return RunSerializer(runs, many=True).data

    def to_representation(self, experiment: Experiment) -> dict:
        data = super().to_representation(experiment)
        if experiment.status == "running" and experiment.job_id:
            # The job's roll-up counts folds of running trials: progress moves during long trials.
            from jobs.selectors import children_summaries, job_rollup, rollup

            job = job_rollup(Job.objects.filter(pk=experiment.job_id)).first()
            if job is not None:
                data["progress"] = max(data["progress"], rollup(job, children_summaries([job]).get(job.pk)).progress)
        return data

    def get_baselines(self, experiment: Experiment) -> dict:
        """What every run is compared with: the project's bar and the two baseline runs."""
        p = experiment.project
        runs = {r.algorithm: r.score for r in experiment.runs.filter(kind="baseline")}
        return {
            "project_baseline_score": p.baseline_score,
            "success_threshold": p.success_threshold,
            "success_metric": p.success_metric,
            "dummy_score": runs.get("dummy"),
            "linear_score": runs.get("logistic", runs.get("linear")),
        }


class ExperimentCreateSerializer(serializers.Serializer):
    project = serializers.IntegerField()
    dataset_version = serializers.IntegerField()
    target = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    metric = serializers.CharField(max_length=30, required=False, allow_blank=True, default="")
    recipe = serializers.IntegerField(required=False, allow_null=True, default=None)
    cv_folds = serializers.IntegerField(required=False, default=5, min_value=2, max_value=20)
    cv_strategy = serializers.CharField(max_length=20, required=False, default="auto")
    algorithms = serializers.ListField(child=serializers.CharField(max_length=60), required=False, default=list)
    search = serializers.DictField(required=False, default=dict)
    # Binary classification: the class precision, recall, F1 and ROC AUC are about (default: the
    # second of the two sorted classes).
    positive_class = serializers.JSONField(required=False, default=None)


class ExternalRunSerializer(serializers.Serializer):
    """Multipart: `model` is the skops file; `params` and `cv_metrics` are JSON text."""

    algorithm = serializers.CharField(max_length=60, help_text="A label, e.g. lightgbm.")
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    params = serializers.JSONField(required=False, default=dict, help_text="JSON object of parameters.")
    cv_metrics = serializers.JSONField(
        help_text='JSON object {metric: number} or {metric: {"mean", "std"}}; must include the experiment\'s metric.'
    )
    model = serializers.FileField(help_text="The fitted model, saved with skops.io.dump (never a pickle).")


class EvaluateSerializer(serializers.Serializer):
    run = serializers.IntegerField()


class TuneSerializer(serializers.Serializer):
    algorithm = serializers.CharField(max_length=60, required=False, default="")
    n_trials = serializers.IntegerField(required=False, default=20, min_value=1, max_value=500)
    method = ChoiceField(choices=["tpe", "random", "grid"], required=False, default="tpe")


SORT_PARAMETER = OpenApiParameter(
    "sort",
    str,
    description="Rank the leaderboard by this metric of the task, best first (`-` for worst first); "
    "default: the experiment's metric.",
)


def leaderboard_sort(experiment: Experiment, raw: str | None) -> tuple[str | None, bool]:
    """(metric, reversed) from `?sort=`; an unknown metric is a 400 listing the task's metrics."""
    if not raw:
        return None, False
    metric = raw.lstrip("-")
    valid = metric_names(experiment.task_type)
    if metric not in valid:
        raise InvalidInput(
            f"Unknown metric {metric!r} for this {experiment.task_type} experiment: sort by {valid_list(valid)} "
            "(best first; prefix - for worst first).",
            field="sort",
        )
    return metric, raw.startswith("-")


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Experiments: training configurations with a leaderboard of runs.

    `GET .../{id}/?sort=<metric>` sorts the leaderboard by any metric of the task type.
    """

    queryset = Experiment.objects.select_related("project", "created_by", "evaluated_by")
    serializer_class = ExperimentSerializer
    filterset_fields = ["project", "dataset_version", "status", "task_type"]
    ordering_fields = ["created_at", "name", "status"]
    write_permission = Action.RUN_EXPERIMENTS

    @extend_schema(parameters=[SORT_PARAMETER], responses=ExperimentDetailSerializer)
    def retrieve(self, request, pk=None):
        experiment = self.get_object()
        sort, reverse = leaderboard_sort(experiment, request.query_params.get("sort"))
        ctx = {"request": request, "sort": sort, "reverse": reverse}
        return Response(ExperimentDetailSerializer(experiment, context=ctx).data)

    @extend_schema(
        request=ExperimentCreateSerializer,
        responses={202: accepted_schema(ExperimentDetailSerializer)},
        parameters=[location_header()],
    )
    def create(self, request):
        """Queue training; `Location` is the experiment's job, whose status covers every trial."""
        body = ExperimentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        project = self.project_from_body(data["project"], Action.RUN_EXPERIMENTS)
        version = self.related_in_project(
            DatasetVersion.objects.select_related("dataset"), data["dataset_version"], project, "dataset_version"
        )
        recipe = None
        if data.get("recipe") is not None:
            recipe = self.related_in_project(Recipe.objects.all(), data["recipe"], project, "recipe")
        config = services.ExperimentConfig(
            dataset_version=version,
            target=data["target"],
            name=data["name"],
            metric=data["metric"],
            recipe=recipe,
            cv_folds=data["cv_folds"],
            cv_strategy=data["cv_strategy"],
            algorithms=data["algorithms"],
            search=data["search"],
            positive_class=data["positive_class"],
        )
        experiment = services.experiment_create(project=project, created_by=request.user, config=config)
        return accepted(ExperimentDetailSerializer(experiment, context={"request": request}).data, experiment.job)

    @extend_schema(
        request=EvaluateSerializer,
        responses={202: accepted_schema(ExperimentSerializer)},
        parameters=[location_header()],
    )
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        """The one final evaluation on the locked test set (a job); a second one is a 409."""
        experiment = self.get_object()
        body = EvaluateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = Run.objects.filter(pk=body.validated_data["run"], experiment=experiment).first()
        if run is None:
            raise InvalidInput("No such run in this experiment.", field="run")
        experiment = services.evaluate_request(experiment=experiment, run=run, actor=request.user)
        return accepted(ExperimentSerializer(experiment).data, experiment.evaluation_job)

    @extend_schema(
        request=TuneSerializer, responses={202: accepted_schema(ExperimentSerializer)}, parameters=[location_header()]
    )
    @action(detail=True, methods=["post"])
    def tune(self, request, pk=None):
        """A follow-up experiment tuning one algorithm (default: the best run's) with more trials."""
        experiment = self.get_object()
        body = TuneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        child = services.experiment_tune(experiment=experiment, created_by=request.user, **body.validated_data)
        return accepted(ExperimentSerializer(child).data, child.job)

    @extend_schema(request={"multipart/form-data": ExternalRunSerializer}, responses={201: RunDetailSerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path="runs/external",
        parser_classes=[MultiPartParser, FormParser, JSONParser],
    )
    def external_run(self, request, pk=None):
        """Log a model trained elsewhere as a run (checked, scored on validation rows, stored by us);
        the experiment's one final evaluation can then judge it on the locked test set."""
        experiment = self.get_object()
        body = ExternalRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        upload = data["model"]
        external.check_size(upload.size)
        run = external.external_run_log(
            experiment=experiment,
            actor=request.user,
            upload=external.ExternalRun(
                name=data["name"],
                algorithm=data["algorithm"],
                params=external.parse_json_field(data["params"], "params"),
                cv_metrics=external.parse_json_field(data["cv_metrics"], "cv_metrics"),
                filename=upload.name or "",
                data=upload.read(),
            ),
        )
        return Response(
            RunDetailSerializer(run).data,
            status=http_status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/runs/{run.pk}/"},
        )

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        experiment = services.experiment_cancel(experiment=self.get_object(), actor=request.user)
        return Response(ExperimentSerializer(experiment).data)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ProjectScopedViewSet):
    """Runs (trials). `GET /runs/{id}/` includes diagnostics; `POST .../diagnose/` computes them.

    The list orders by any metric of the task (`?ordering=-roc_auc`, ascending without `-`) and
    filters by metric ranges (`?roc_auc__gte=0.8&fit_seconds...`): see experiments/run_queries.py.
    """

    queryset = Run.objects.select_related("experiment", "diagnostics_job")
    serializer_class = RunSerializer
    filterset_fields = ["project", "experiment", "status", "kind", "algorithm"]
    ordering_fields = ["created_at", "score", "trial_number", "fit_seconds"]
    write_permission = Action.RUN_EXPERIMENTS
    filter_help = "<metric>__gte, __gt, __lte or __lt for score and any metric of the task"

    def _task_type(self) -> str | None:
        """The runs' task, when the query pins it (an experiment or a project): metrics are then
        checked against it ("rmse is a regression metric; these runs are classification")."""
        if hasattr(self, "_runs_task_type"):  # asked by the filters and the ordering: one query
            return self._runs_task_type
        params, self._runs_task_type = self.request.query_params, None
        for model, key in ((Experiment, "experiment"), (Project, "project")):
            if params.get(key, "").isdigit():
                rows = scope(model.objects.filter(pk=int(params[key])), self.request.user)
                self._runs_task_type = rows.values_list("task_type", flat=True).first()
                if self._runs_task_type:
                    break
        return self._runs_task_type

    def extra_filter_names(self, request) -> list[str]:
        return run_queries.range_filter_names()

    def ordering_terms(self, request) -> list[str]:
        return run_queries.metric_choices(self._task_type())

    def ordering_error(self, term: str, field: str) -> None:
        if term in run_queries.METRICS:  # a metric of the other task: say so
            run_queries.check_metric(term, self._task_type(), field=field)

    def apply_ordering(self, queryset, terms):
        return run_queries.order_by_terms(queryset, terms, self._task_type())

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        algorithm = self.request.query_params.get("algorithm")
        if algorithm:
            known = sorted({a.key for a in catalogue.CATALOGUE.values()} | {"ensemble"})
            if algorithm not in known and not queryset.filter(kind=external.EXTERNAL, algorithm=algorithm).exists():
                raise InvalidInput(
                    f"Unknown algorithm {algorithm!r}: use {valid_list(known)} or an external run's label.",
                    field="algorithm",
                )
        return run_queries.apply_ranges(queryset, self.request.query_params, self._task_type())

    def retrieve(self, request, pk=None):
        return Response(RunDetailSerializer(self.get_object()).data)

    @extend_schema(request=None, responses={202: accepted_schema(RunDetailSerializer)}, parameters=[location_header()])
    @action(detail=True, methods=["post"])
    def diagnose(self, request, pk=None):
        """Diagnostics on validation data (a job; `Location`)."""
        run = services.diagnose_request(run=self.get_object(), actor=request.user)
        return accepted(RunDetailSerializer(run).data, run.diagnostics_job)

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        parameters=[
            OpenApiParameter(
                "reviewer_accuracy",
                float,
                description="Share of reviews decided correctly, 0.5 to 1 (default 1: reviewers are right).",
            )
        ],
    )
    @action(detail=True, methods=["get"])
    def costs(self, request, pk=None):
        """Decisions by cost on the validation rows: expected cost per decision of each threshold
        (and, when review has a cost, of the cheapest review band around it) under the project's
        cost matrix; the cost-optimal threshold and band with 95% bootstrap intervals, next to the
        F1-optimal and the default 0.5."""
        run = self.get_object()
        raw = request.query_params.get("reviewer_accuracy")
        accuracy = 1.0
        if raw not in (None, ""):
            try:
                accuracy = float(raw)
            except ValueError:
                accuracy = -1.0
            if not 0.5 <= accuracy <= 1:
                raise InvalidInput("A share between 0.5 and 1.", field="reviewer_accuracy")
        out = selectors.run_costs(run, reviewer_accuracy=accuracy)
        return Response({"run": run.pk, **{k: v for k, v in out.items() if k != "chart"}})


class AlgorithmOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    task_type = serializers.CharField()
    baseline = serializers.BooleanField()
    space = serializers.DictField()
    default = serializers.BooleanField()


class AlgorithmsOut(serializers.Serializer):
    task_type = serializers.CharField()
    baselines = serializers.ListField(child=serializers.CharField())
    algorithms = AlgorithmOut(many=True)


class AlgorithmsApi(APIView):
    """The estimator catalogue with default search spaces: `GET /api/v1/algorithms/?task_type=`."""

    @extend_schema(parameters=[OpenApiParameter("task_type", str, required=True)], responses=AlgorithmsOut)
    def get(self, request):
        task_type = request.query_params.get("task_type", "")
        if task_type not in (catalogue.CLASSIFICATION, catalogue.REGRESSION):
            raise InvalidInput("task_type must be classification or regression.", field="task_type")
        rows = [
            {
                "key": a.key,
                "label": a.label,
                "task_type": a.task_type,
                "baseline": a.baseline,
                "space": a.space,
                "default": a.key in catalogue.DEFAULT_ALGORITHMS[task_type],
            }
            for a in catalogue.algorithms_for(task_type)
        ]
        return Response({"task_type": task_type, "baselines": catalogue.BASELINES[task_type], "algorithms": rows})
