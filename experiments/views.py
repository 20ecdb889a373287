"""Pages: experiments list, create form, detail with a live leaderboard, run diagnostics, compare."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from datasets import recipe_ui
from datasets import services as datasets_services
from datasets.models import DatasetVersion, Recipe, VersionStatus
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
    experiments = Experiment.objects.filter(project=project).select_related(
        "dataset_version__dataset", "created_by", "project"
    )
    rows = []
    for e in experiments[:200]:
        metric = selectors.ranking_metric(e)
        best = selectors.best_candidate(e)
        rows.append(
            {"e": e, "best": best, "metric": metric, "score": selectors.cv_score(best, metric) if best else None}
        )
    return render(request, "experiments/list.html", project_context(request, project, "experiments", rows=rows))


def _split_versions(project):
    return (
        DatasetVersion.objects.filter(project=project, status=VersionStatus.READY)
        .exclude(split_key="")
        .select_related("dataset")
        .order_by("-created_at")
    )


def _recipe_for(*, form: ExperimentForm, project, version, target: str, actor) -> Recipe | None:
    """The recipe the editor sent: the saved one it started from when unchanged, else the steps
    saved as a new recipe version (checked against this version and target first, so a bad step
    is an error at that step and nothing is saved)."""
    steps = recipe_ui.parse_steps(form.cleaned_data.get("recipe"), field="recipe")
    if not steps:
        return None
    base = form.cleaned_data.get("recipe_base")
    if base:
        saved = Recipe.objects.filter(project=project, pk=base).first()
        if saved is not None and saved.steps == steps:
            return saved
    recipe_ui.check_steps(version, steps=steps, target=target)
    name = (form.cleaned_data.get("recipe_name") or "").strip() or f"{version.dataset.name}: {target}"
    return datasets_services.recipe_save(project=project, name=name[:120], steps=steps, actor=actor)


@login_required
@require_http_methods(["GET", "POST"])
def experiment_create_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.RUN_EXPERIMENTS)
    versions = list(_split_versions(project))
    initial = {}
    if versions and versions[0].target_column:
        initial["target"] = versions[0].target_column
    form = ExperimentForm(request.POST or None, project=project, versions=versions, initial=initial)
    recipe_error = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            version = next((v for v in versions if str(v.pk) == d["dataset_version"]), None)
            if version is None:
                raise InvalidInput("No such dataset version in this project.", field="dataset_version")
            with transaction.atomic():  # a refused experiment leaves no recipe behind
                recipe = _recipe_for(
                    form=form, project=project, version=version, target=d["target"], actor=request.user
                )
                config = services.ExperimentConfig(
                    dataset_version=version,
                    target=d["target"],
                    name=d["name"],
                    metric=d["metric"],
                    recipe=recipe,
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
            if exc.field and (exc.field == "recipe" or exc.field.startswith("steps")):
                recipe_error = {"detail": exc.message, "field": exc.field}
                form.add_error("recipe", exc.message)
            else:
                report(request, exc, form)
        else:
            messages.success(request, "Training started: baselines first, then the search.")
            return redirect("experiments:detail", experiment.pk)
    selected = str(form["dataset_version"].value() or (versions[0].pk if versions else ""))
    config = {"version": selected, "target": str(form["target"].value() or ""), "columns": []}
    config.update(recipe_ui.editor_config(versions[0]) if versions else {"ops": [], "fields": {}, "recipes": []})
    if recipe_error or (request.method == "POST" and form.data.get("recipe")):
        config.update({"error": recipe_error, "initial": _posted_steps(form.data.get("recipe"))})
    return render(
        request,
        "experiments/create.html",
        project_context(
            request,
            project,
            "experiments",
            form=form,
            has_versions=bool(versions),
            recipe_ui=config,
            version_targets={
                str(v.pk): {"columns": form.columns[str(v.pk)], "target": v.target_column} for v in versions
            },
        ),
    )


def _posted_steps(raw) -> list:
    try:
        return recipe_ui.parse_steps(raw, field="recipe")
    except DomainError:
        return []


def _row(run: Run, *, experiment: Experiment, metrics: list[str], shown: str, bar, best_baseline) -> dict:
    score = selectors.cv_score(run, shown)
    gain = None
    if best_baseline is not None and score is not None and run.kind != "baseline":
        gain = (score - best_baseline) if METRICS[shown].higher_is_better else (best_baseline - score)
    return {
        "run": run,
        "score": (run.cv_metrics or {}).get(shown) or {},
        "cells": [(m, (run.cv_metrics or {}).get(m) or {}) for m in metrics if m != shown],
        "beats_baseline": None if bar is None or score is None else beats(shown, score, bar),
        "gain": gain,  # over the best baseline run, positive = better whatever the direction
        "train": (run.train_metrics or {}).get(shown),
        "fit": selectors.fit_verdict(run, experiment.metric),
    }


def _leaderboard(experiment: Experiment, sort: str | None) -> dict:
    ranked = selectors.ranking(experiment, sort=sort)
    shown = ranked.metric
    metrics = metric_names(experiment.task_type)
    project = experiment.project
    bar = project.baseline_score if project.success_metric == shown else None
    baseline_scores = [selectors.cv_score(r, shown) for r in ranked.baselines]
    baseline_scores = [x for x in baseline_scores if x is not None]
    best_baseline = (max if ranked.higher_is_better else min)(baseline_scores) if baseline_scores else None

    def rows(runs):
        return [
            _row(r, experiment=experiment, metrics=metrics, shown=shown, bar=bar, best_baseline=best_baseline)
            for r in runs
        ]

    return {
        "ranking": ranked,
        "shown": shown,
        "other_metrics": [m for m in metrics if m != shown],
        "baseline_rows": rows(ranked.baselines),
        "candidate_rows": rows(ranked.candidates),
        "other_rows": rows(ranked.others),
        "best_baseline": best_baseline,
    }


def _evaluate_choices(experiment: Experiment, board: dict) -> list[dict]:
    """Runs for the final evaluation: candidates in rank order, then baselines, with warnings."""
    out = []
    for group, rows in (("candidate", board["candidate_rows"]), ("baseline", board["baseline_rows"])):
        for row in rows:
            r = row["run"]
            if r.status != RunStatus.SUCCEEDED:
                continue
            out.append(
                {
                    "run": r,
                    "group": group,
                    "score": row["score"].get("mean"),
                    "best": board["ranking"].best is not None and r.pk == board["ranking"].best.pk,
                    "warnings": selectors.evaluation_warnings(experiment, r),
                }
            )
    return out


def _can_evaluate(experiment: Experiment) -> bool:
    return (
        experiment.status == "succeeded"
        and experiment.test_evaluation is None
        and experiment.dataset_version.test_used_at is None
        and (
            experiment.evaluated_run_id is None
            or (experiment.evaluation_job is not None and experiment.evaluation_job.status in ("failed", "cancelled"))
        )
    )


def _render_detail(request: HttpRequest, experiment: Experiment, *, evaluate: dict | None = None, status: int = 200):
    project = experiment.project
    board = _leaderboard(experiment, request.GET.get("sort"))
    ranked = board["ranking"]
    choices = _evaluate_choices(experiment, board)
    evaluate = evaluate or {}
    selected = evaluate.get("run") or request.GET.get("run") or (ranked.best.pk if ranked.best else "")
    chart_runs = [*board["baseline_rows"], *board["candidate_rows"]]
    chart = {
        "metric": board["shown"],
        "label": METRICS[board["shown"]].label,
        "higher_is_better": ranked.higher_is_better,
        "best": ranked.best.pk if ranked.best else None,
        "runs": [
            {
                "id": x["run"].pk,
                "name": f"#{x['run'].pk} {x['run'].algorithm}",
                "kind": x["run"].kind,
                "score": x["score"].get("mean"),
                "train": x["train"],
            }
            for x in chart_runs
            if x["score"].get("mean") is not None
        ],
        "baseline_score": project.baseline_score if project.success_metric == board["shown"] else None,
        "threshold": project.success_threshold if project.success_metric == board["shown"] else None,
    }
    return render(
        request,
        "experiments/detail.html",
        project_context(
            request,
            project,
            "experiments",
            experiment=experiment,
            board=board,
            metrics=metric_names(experiment.task_type),
            sort=board["shown"],
            chart=chart,
            metric_label=METRICS[experiment.metric].label,
            ranking_label=METRICS[ranked.metric].label,
            evaluate_choices=choices,
            evaluate_selected=str(selected),
            evaluate_errors=evaluate.get("errors") or {},
            live=experiment.status in ("queued", "running"),
            can_evaluate=_can_evaluate(experiment),
        ),
        status=status,
    )


@login_required
def experiment_detail_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = access(
        request.user,
        Experiment.objects.select_related("project", "dataset_version__dataset", "job", "evaluation_job"),
        experiment_id,
    )
    return _render_detail(request, experiment)


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
    """The one look at the locked test set. A baseline or an overfitting run needs an explicit
    `confirm` (the form's "evaluate it anyway" box): a refusal shows the page again with the
    problem at its control, and nothing is spent."""
    experiment = access(
        request.user,
        Experiment.objects.select_related("project", "dataset_version__dataset", "job", "evaluation_job"),
        experiment_id,
        Action.RUN_EXPERIMENTS,
    )
    raw = request.POST.get("run") or ""
    run = Run.objects.filter(pk=int(raw), experiment=experiment).first() if raw.isdigit() else None
    try:
        if run is None:
            raise InvalidInput("Choose a run of this experiment.", field="run")
        warnings = selectors.evaluation_warnings(experiment, run)
        if warnings and request.POST.get("confirm") != "1":
            raise InvalidInput(
                " ".join(warnings) + " Tick “Evaluate it anyway” to use the test set on it.", field="confirm"
            )
        services.evaluate_request(experiment=experiment, run=run, actor=request.user)
    except DomainError as exc:
        field = exc.field if exc.field in ("run", "confirm") else "form"
        # The page again with the error at its control (200, like every re-rendered form of the UI).
        return _render_detail(request, experiment, evaluate={"run": raw, "errors": {field: exc.message}})
    messages.success(request, "Final evaluation started: the locked test set is now used.")
    return redirect("experiments:detail", experiment.pk)


def class_imbalance(diagnostics: dict) -> float | None:
    """Majority:minority ratio of the validation classes (confusion matrix row sums). The same
    rule as the profile's class_imbalance warning: 3:1 or more is imbalanced."""
    rows = [sum(r) for r in diagnostics.get("confusion_matrix") or []]
    rows = [n for n in rows if n]
    if len(rows) < 2:
        return None
    return max(rows) / min(rows)


@login_required
def run_detail_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = access(request.user, Run.objects.select_related("experiment__project", "diagnostics_job"), run_id)
    experiment = run.experiment
    metrics = metric_names(experiment.task_type)
    diagnostics = run.diagnostics or {}
    ratio = class_imbalance(diagnostics)
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
            diagnostics=diagnostics,
            class_ratio=ratio,
            imbalanced=ratio is not None and ratio >= 3,
            costs=selectors.run_costs(run) if diagnostics and experiment.task_type == "classification" else None,
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
