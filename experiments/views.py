"""Pages: experiments list, create form, detail with a live leaderboard, run diagnostics, compare."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from datasets.models import DatasetVersion, VersionStatus
from experiments import selectors, services
from experiments.forms import ExperimentForm
from experiments.ml.metrics import metric_names
from experiments.models import Experiment, Run, RunStatus
from mlplatform.errors import DomainError, InvalidInput
from mlplatform.ui import report
from projects.access import access, project_for
from projects.metrics import METRICS, beats
from projects.roles import Action
from projects.views import project_context


@login_required
def experiment_list_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    experiments = Experiment.objects.filter(project=project).select_related("dataset_version__dataset", "created_by")
    rows = []
    for e in experiments[:200]:
        best = selectors.leaderboard(e)[:1]
        rows.append({"e": e, "best": best[0] if best and best[0].score is not None else None})
    return render(request, "experiments/list.html", project_context(request, project, "experiments", rows=rows))


def _split_versions(project):
    return (
        DatasetVersion.objects.filter(project=project, status=VersionStatus.READY)
        .exclude(split_key="")
        .select_related("dataset")
        .order_by("-created_at")
    )


@login_required
@require_http_methods(["GET", "POST"])
def experiment_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.RUN_EXPERIMENTS)
    versions = list(_split_versions(project))
    initial = {}
    if versions and versions[0].target_column:
        initial["target"] = versions[0].target_column
    form = ExperimentForm(request.POST or None, project=project, versions=versions, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            version = next((v for v in versions if str(v.pk) == d["dataset_version"]), None)
            if version is None:
                raise InvalidInput("No such dataset version in this project.", field="dataset_version")
            config = services.ExperimentConfig(
                dataset_version=version,
                target=d["target"],
                name=d["name"],
                metric=d["metric"],
                cv_folds=d["cv_folds"],
                cv_strategy=d["cv_strategy"],
                algorithms=list(d["algorithms"]),
                search={
                    "method": d["method"],
                    "n_trials": d["n_trials"],
                    "timeout_seconds": d["timeout_seconds"],
                    "ensemble_k": d["ensemble_k"],
                    "spaces": {k: v for k, v in d["spaces"].items() if k in d["algorithms"]},
                },
            )
            experiment = services.experiment_create(project=project, created_by=request.user, config=config)
        except DomainError as exc:
            report(request, exc, form)
        else:
            messages.success(request, "Training started: baselines first, then the search.")
            return redirect("experiments:detail", experiment.pk)
    return render(
        request,
        "experiments/create.html",
        project_context(request, project, "experiments", form=form, has_versions=bool(versions)),
    )


def _leaderboard_rows(experiment: Experiment, sort: str | None) -> list[dict]:
    metrics = metric_names(experiment.task_type)
    project = experiment.project
    bar = project.baseline_score if project.success_metric == experiment.metric else None
    rows = []
    for r in selectors.leaderboard(experiment, sort=sort):
        rows.append(
            {
                "run": r,
                "beats_baseline": None if bar is None or r.score is None else beats(experiment.metric, r.score, bar),
                "cells": [((r.cv_metrics or {}).get(m) or {}) for m in metrics],
                "train": (r.train_metrics or {}).get(experiment.metric),
                "fit": selectors.fit_verdict(r, experiment.metric),
            }
        )
    return rows


@login_required
def experiment_detail_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(
        request.user,
        Experiment.objects.select_related("project", "dataset_version__dataset", "job", "evaluation_job"),
        experiment_id,
    )
    project = experiment.project
    sort = request.GET.get("sort") or experiment.metric
    metrics = metric_names(experiment.task_type)
    rows = _leaderboard_rows(experiment, sort)
    chart = {
        "metric": experiment.metric,
        "label": METRICS[experiment.metric].label,
        "runs": [
            {
                "id": x["run"].pk,
                "name": f"#{x['run'].pk} {x['run'].algorithm}",
                "kind": x["run"].kind,
                "score": x["run"].score,
                "train": x["train"],
            }
            for x in rows
            if x["run"].score is not None
        ],
        "baseline_score": project.baseline_score if project.success_metric == experiment.metric else None,
        "threshold": project.success_threshold if project.success_metric == experiment.metric else None,
    }
    return render(
        request,
        "experiments/detail.html",
        project_context(
            request,
            project,
            "experiments",
            experiment=experiment,
            rows=rows,
            metrics=metrics,
            sort=sort,
            chart=chart,
            metric_label=METRICS[experiment.metric].label,
            succeeded_runs=[x["run"] for x in rows if x["run"].status == RunStatus.SUCCEEDED],
            live=experiment.status in ("queued", "running"),
            can_evaluate=experiment.status == "succeeded"
            and experiment.test_evaluation is None
            and experiment.dataset_version.test_used_at is None
            and (
                experiment.evaluated_run_id is None
                or (
                    experiment.evaluation_job is not None
                    and experiment.evaluation_job.status in ("failed", "cancelled")
                )
            ),
        ),
    )


@login_required
@require_POST
def experiment_cancel_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(request.user, Experiment, experiment_id, Action.RUN_EXPERIMENTS)
    try:
        services.experiment_cancel(experiment=experiment, actor=request.user)
        messages.success(request, "Experiment cancelled.")
    except DomainError as exc:
        report(request, exc)
    return redirect("experiments:detail", experiment.pk)


@login_required
@require_POST
def experiment_tune_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(
        request.user, Experiment.objects.select_related("recipe"), experiment_id, Action.RUN_EXPERIMENTS
    )
    try:
        n_trials = int(request.POST.get("n_trials") or 20)
        child = services.experiment_tune(experiment=experiment, created_by=request.user, n_trials=n_trials)
    except ValueError:
        messages.error(request, "n_trials: a whole number, please.")
    except DomainError as exc:
        report(request, exc)
    else:
        messages.success(request, f"Tuning {child.algorithms[0]} with {n_trials} more trials.")
        return redirect("experiments:detail", child.pk)
    return redirect("experiments:detail", experiment.pk)


@login_required
@require_POST
def experiment_evaluate_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(request.user, Experiment, experiment_id, Action.RUN_EXPERIMENTS)
    try:
        run = Run.objects.filter(pk=request.POST.get("run") or 0, experiment=experiment).first()
        if run is None:
            raise InvalidInput("Choose a run of this experiment.", field="run")
        services.evaluate_request(experiment=experiment, run=run, actor=request.user)
        messages.success(request, "Final evaluation started: the locked test set is now used.")
    except (DomainError, ValueError) as exc:
        if isinstance(exc, DomainError):
            report(request, exc)
        else:
            messages.error(request, "Choose a run of this experiment.")
    return redirect("experiments:detail", experiment.pk)


@login_required
def run_detail_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access(request.user, Run.objects.select_related("experiment__project", "diagnostics_job"), run_id)
    experiment = run.experiment
    metrics = metric_names(experiment.task_type)
    return render(
        request,
        "experiments/run.html",
        project_context(
            request,
            experiment.project,
            "experiments",
            run=run,
            experiment=experiment,
            metric_rows=[(m, (run.cv_metrics or {}).get(m) or {}, (run.train_metrics or {}).get(m)) for m in metrics],
            fit=selectors.fit_verdict(run, experiment.metric),
            diagnostics=run.diagnostics or {},
        ),
    )


@login_required
@require_POST
def run_diagnose_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access(request.user, Run, run_id, Action.RUN_EXPERIMENTS)
    try:
        services.diagnose_request(run=run, actor=request.user)
    except DomainError as exc:
        report(request, exc)
    return redirect("experiments:run", run.pk)


@login_required
def compare_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(request.user, Experiment.objects.select_related("project"), experiment_id)
    ids = [int(x) for x in request.GET.getlist("runs") if x.isdigit()][:10]
    runs = list(Run.objects.filter(experiment=experiment, pk__in=ids).order_by("pk"))
    info = selectors.compare(runs)
    metrics = metric_names(experiment.task_type)
    table_params = [(p, [r.params.get(p, "—") for r in runs]) for p in info["params"]]
    table_metrics = [(m, [((r.cv_metrics or {}).get(m) or {}).get("mean") for r in runs]) for m in metrics]
    chart = {
        "metrics": metrics,
        "runs": [
            {
                "name": f"#{r.pk} {r.algorithm}",
                "values": [((r.cv_metrics or {}).get(m) or {}).get("mean") for m in metrics],
                "roc": (r.diagnostics or {}).get("roc"),
                "learning_curve": (r.diagnostics or {}).get("learning_curve"),
            }
            for r in runs
        ],
    }
    return render(
        request,
        "experiments/compare.html",
        project_context(
            request,
            experiment.project,
            "experiments",
            experiment=experiment,
            runs=runs,
            table_params=table_params,
            table_metrics=table_metrics,
            chart=chart,
        ),
    )
