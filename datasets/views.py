"""Dataset pages: list + collection, one dataset's versions, one version's exploration."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets import cleaning, recipe_ui, selectors, services
from datasets.apis import version_job
from datasets.models import Dataset, DatasetVersion, Recipe, VersionStatus
from datasets.rows import frame_rows
from mlplatform.errors import DomainError
from mlplatform.ui import report
from projects.access import access, project_for, require
from projects.roles import Action
from projects.views import project_context

SCATTER_ROWS = 2000


class UrlForm(forms.Form):
    name = forms.CharField(max_length=120)
    source_url = forms.CharField(max_length=2000, label="HTTP(S) URL")


class SqlQueryForm(forms.Form):
    name = forms.CharField(max_length=120)
    connection = forms.CharField(max_length=80)
    query = forms.CharField(widget=forms.Textarea, max_length=20000)


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=80)
    dsn = forms.CharField(max_length=2000, label="DSN", widget=forms.PasswordInput(render_value=False))


class SplitForm(forms.Form):
    strategy = forms.ChoiceField(
        choices=[
            ("stratified", "Stratified (keep class shares)"),
            ("random", "Random"),
            ("group", "Group (each group in one part)"),
            ("time", "Time (latest rows in test)"),
        ]
    )
    column = forms.ChoiceField(required=False, help_text="The target (stratified), group or time column.")
    test_size = forms.FloatField(initial=0.2, min_value=0.01, max_value=0.8, label="Test share")
    val_size = forms.FloatField(initial=0.2, min_value=0, max_value=0.8, label="Validation share")
    seed = forms.IntegerField(initial=42, min_value=0, label="Random seed")

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = [("", "— none (random) —")] + [(c, c) for c in columns]


@login_required
@require_http_methods(["GET", "POST"])
def datasets_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    url_form = UrlForm(request.POST if request.POST.get("form") == "url" else None, prefix="url")
    sql_form = SqlQueryForm(request.POST if request.POST.get("form") == "sql" else None, prefix="sql")
    conn_form = ConnectionForm(request.POST if request.POST.get("form") == "connection" else None, prefix="conn")
    if request.method == "POST":
        form_kind = request.POST.get("form")
        try:
            if form_kind == "url" and url_form.is_valid():
                require(request.user, project, Action.EDIT_DATA)
                v = services.dataset_from_url(
                    project=project,
                    name=url_form.cleaned_data["name"],
                    created_by=request.user,
                    url=url_form.cleaned_data["source_url"],
                )
                return redirect("datasets:version", v.pk)
            if form_kind == "sql" and sql_form.is_valid():
                require(request.user, project, Action.EDIT_DATA)
                v = services.dataset_from_sql(project=project, created_by=request.user, **sql_form.cleaned_data)
                return redirect("datasets:version", v.pk)
            if form_kind == "connection" and conn_form.is_valid():
                require(request.user, project, Action.MANAGE_CONNECTIONS)
                services.sql_connection_create(project=project, actor=request.user, **conn_form.cleaned_data)
                messages.success(request, "Connection saved. Its DSN is stored encrypted and never shown again.")
                return redirect("datasets:list", project.pk)
        except DomainError as exc:
            report(request, exc, {"url": url_form, "sql": sql_form, "connection": conn_form}.get(form_kind))
    datasets = (
        selectors.dataset_list(user=request.user, project=project).prefetch_related("versions").order_by("-updated_at")
    )
    rows = []
    for d in datasets:
        versions = sorted(d.versions.all(), key=lambda v: -v.number)
        rows.append({"dataset": d, "latest": versions[0] if versions else None, "count": len(versions)})
    connections = services.sql_connection_names(project=project)
    return render(
        request,
        "datasets/list.html",
        project_context(
            request,
            project,
            "data",
            rows=rows,
            url_form=url_form,
            sql_form=sql_form,
            conn_form=conn_form,
            connections=connections,
        ),
    )


@login_required
def dataset_detail_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = access(request.user, Dataset, dataset_id, Action.VIEW)
    versions = dataset.versions.select_related("created_by", "parent").order_by("-number")
    recipes = Recipe.objects.filter(project=dataset.project, dataset=dataset).order_by("name", "-version")
    return render(
        request,
        "datasets/dataset.html",
        project_context(request, dataset.project, "data", dataset=dataset, versions=versions, recipes=recipes),
    )


def default_chart_column(columns: list[dict], correlations: dict, target: str) -> str:
    """The column whose distribution is worth seeing first: never an id-like, free-text or
    constant column; the one most associated with the target when the profile measured it;
    otherwise the first numeric column with a real spread, then the first small categorical."""
    usable = [
        c
        for c in columns
        if c["name"] != target
        and c.get("kind") not in ("id_like", "text")
        and (c.get("unique") or 0) > 1
        and (c.get("histogram") or c.get("top_values"))
    ]
    names = {c["name"] for c in usable}
    for key in ("numeric", "categorical"):
        block = correlations.get(key) or {}
        cols = block.get("columns") or []
        if target in cols:
            row = (block.get("matrix") or [])[cols.index(target)]
            scored = [(abs(v), c) for c, v in zip(cols, row, strict=False) if c in names and v is not None]
            if scored:
                return max(scored)[1]
    for c in usable:
        if c.get("kind") == "numeric" and (c.get("unique") or 0) >= 10:
            return c["name"]
    for c in usable:
        if c.get("kind") in ("categorical", "boolean") and (c.get("unique") or 0) <= 50:
            return c["name"]
    return usable[0]["name"] if usable else ""


def _charts_payload(version: DatasetVersion) -> dict:
    profile = version.profile or {}
    correlations = (profile.get("table") or {}).get("correlations") or {}
    payload: dict = {
        "columns": profile.get("columns", []),
        "correlations": correlations,
        "target": profile.get("target"),
        "default_column": default_chart_column(profile.get("columns", []), correlations, version.target_column),
        "scatter": None,
    }
    if version.status == VersionStatus.READY and version.storage_key:
        sample = selectors.version_sample(version, rows=SCATTER_ROWS)
        numeric = [c["name"] for c in payload["columns"] if c["kind"] in ("numeric", "boolean")]
        keep = [c for c in numeric if c in sample.columns][:30]
        target = version.target_column
        data = {c: [r[0] for r in frame_rows(sample[[c]])] for c in keep}
        payload["scatter"] = {
            "numeric": keep,
            "values": data,
            "target": target,
            "target_values": [str(v) for v in sample[target].tolist()] if target in sample.columns else None,
        }
    return payload


@login_required
@require_http_methods(["GET", "POST"])
def version_detail_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = access(request.user, DatasetVersion.objects.select_related("dataset", "parent", "created_by"), version_id)
    project = version.project
    split_form = SplitForm(
        request.POST if request.POST.get("form") == "split" else None,
        columns=[c["name"] for c in version.schema or [] if c.get("name")],
        initial={
            "strategy": "stratified" if project.task_type == "classification" else "random",
            "column": version.target_column,
        },
    )
    recipe_error = None
    if request.method == "POST":
        require(request.user, project, Action.EDIT_DATA)
        kind = request.POST.get("form")
        try:
            if kind == "target":
                services.version_set_target(version=version, target=request.POST.get("target", ""), actor=request.user)
                messages.success(request, "Target saved; the profile is being computed again.")
                return redirect("datasets:version", version.pk)
            if kind == "split" and split_form.is_valid():
                data = dict(split_form.cleaned_data)
                data["column"] = data.get("column") or None
                services.version_split(version=version, actor=request.user, **data)
                messages.success(request, "Split saved. The test set is locked.")
                return redirect("datasets:version", version.pk)
            if kind == "recipe":
                posted_steps = request.POST.get("steps") or "[]"
                steps = recipe_ui.parse_steps(posted_steps, field="steps")
                recipe = services.recipe_save(
                    project=project,
                    name=request.POST.get("name", ""),
                    steps=steps,
                    actor=request.user,
                    dataset=version.dataset,
                )
                messages.success(request, f"Recipe {recipe.name} v{recipe.version} saved.")
                if request.POST.get("apply_cleaning"):
                    new = cleaning.version_clean(version=version, steps=steps, actor=request.user)
                    messages.success(request, f"Cleaning applied as v{new.number}.")
                    return redirect("datasets:version", new.pk)
                return redirect("datasets:version", version.pk)
        except DomainError as exc:
            if kind == "recipe":
                # The editor shows the error at the step (or field) it names, with the steps sent.
                recipe_error = {"detail": exc.message, "field": exc.field or "steps"}
            else:
                report(request, exc, split_form if kind == "split" else None)
    recipe_config = recipe_ui.editor_config(version)
    recipe_config.update(
        {"version": version.pk, "target": version.target_column, "columns": recipe_ui.version_columns(version)}
    )
    if recipe_error:
        recipe_config.update({"error": recipe_error, "initial": _posted_steps(request)})
    return render(
        request,
        "datasets/version.html",
        project_context(
            request,
            project,
            "data",
            dataset=version.dataset,
            version=version,
            job=version_job(version),
            split_form=split_form,
            charts=_charts_payload(version),
            recipe_ui=recipe_config,
            columns=(version.profile or {}).get("columns", []),
            table=(version.profile or {}).get("table", {}),
        ),
    )


def _posted_steps(request: HttpRequest) -> list:
    try:
        return recipe_ui.parse_steps(request.POST.get("steps"), field="steps")
    except DomainError:
        return []


def _json_error(exc: DomainError) -> JsonResponse:
    return JsonResponse({"detail": exc.message, "code": exc.code, "errors": exc.errors or {}}, status=exc.status_code)


@login_required
@require_GET
def recipe_auto_view(request: HttpRequest, version_id: int) -> HttpResponse:
    """The automatic recipe of a version for a target, as JSON for the recipe editor."""
    version = access(request.user, DatasetVersion, version_id, Action.EDIT_DATA)
    try:
        return JsonResponse(recipe_ui.automatic(version, target=request.GET.get("target", "")))
    except DomainError as exc:
        return _json_error(exc)


@login_required
@require_POST
def recipe_preview_view(request: HttpRequest, version_id: int) -> HttpResponse:
    """`{"steps": [...], "target": "..."}` fitted on a sample of training rows: before / after."""
    version = access(request.user, DatasetVersion, version_id, Action.EDIT_DATA)
    try:
        body = recipe_ui.parse_body(request.body)
        steps = recipe_ui.parse_steps(body.get("steps"), field="steps")
        target = body.get("target") or ""
        if not isinstance(target, str):
            raise services.InvalidInput("Must be a column name.", field="target")
        return JsonResponse(recipe_ui.preview_payload(version, steps=steps, target=target))
    except DomainError as exc:
        return _json_error(exc)
