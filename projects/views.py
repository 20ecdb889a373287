from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from mlplatform.errors import DomainError
from mlplatform.ui import report
from projects import services, webhook_settings
from projects.access import can, project_for, require, role_of
from projects.forms import DecisionForm, MemberForm, ProjectForm, RoleForm, WebhookForm
from projects.metrics import METRICS, metrics_for
from projects.models import Membership, Project
from projects.roles import Action
from projects.selectors import audit_rows, project_list
from projects.workflow import next_step, workflow_for


def project_context(request: HttpRequest, project: Project, section: str, **extra) -> dict:
    """What every project page's template needs: the project, the user's role, the tab."""
    role = role_of(request.user, project)
    return {
        "project": project,
        "role": role.value if role else "",
        "section": section,
        "can": {a.value: can(request.user, project, a) for a in Action},
        **extra,
    }


@login_required
def project_list_view(request: HttpRequest) -> HttpResponse:
    return render(request, "projects/list.html", {"rows": project_list(user=request.user)})


def _problem_values(form: ProjectForm) -> dict:
    data = dict(form.cleaned_data)
    data["assumptions"] = data.pop("assumptions_json")
    for name in [k for k in data if k.startswith("cost_") and k != "cost_matrix"]:
        data.pop(name)
    if not data.get("gate_strictness"):
        data.pop("gate_strictness", None)
    return data


@login_required
@require_http_methods(["GET", "POST"])
def project_create_view(request: HttpRequest) -> HttpResponse:
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(created_by=request.user, **_problem_values(form))
        except DomainError as exc:
            report(request, exc, form)
        else:
            messages.success(request, f"Project “{project.name}” created. You are its owner.")
            return redirect("projects:overview", project.pk)
    return render(request, "projects/create.html", {"form": form, "metrics_by_task": _metrics_by_task()})


def _metrics_by_task() -> dict[str, list[tuple[str, str]]]:
    """The success metrics per task type, for the form's script (json_script)."""
    return {t: [(m, METRICS[m].label) for m in metrics_for(t)] for t in ("classification", "regression")}


@login_required
def project_overview_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    stages = workflow_for(project=project, user=request.user)
    # The recent jobs come from the jobs app's `project_jobs` tag (jobs builds on projects).
    return render(
        request,
        "projects/overview.html",
        project_context(
            request,
            project,
            "overview",
            stages=stages,
            next=next_step(stages),
            metric_label=METRICS[project.success_metric].label if project.success_metric in METRICS else "",
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def problem_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    if request.method == "POST":
        require(request.user, project, Action.EDIT_PROJECT)
        form = ProjectForm(request.POST)
        if form.is_valid():
            try:
                services.project_update(project=project, actor=request.user, **_problem_values(form))
            except DomainError as exc:
                report(request, exc, form)
            else:
                messages.success(request, "Problem statement saved.")
                return redirect("projects:problem", project.pk)
    else:
        form = ProjectForm(
            initial={
                **{f: getattr(project, f) for f in services.PROBLEM_FIELDS if f not in ("assumptions", "cost_matrix")},
                **ProjectForm.cost_initial(project.cost_matrix),
                "assumptions_json": json.dumps(project.assumptions),
            }
        )
    return render(
        request,
        "projects/problem.html",
        project_context(
            request,
            project,
            "problem",
            form=form,
            decision_form=DecisionForm(
                initial={"decision": project.decision, "decision_rationale": project.decision_rationale}
            ),
            metrics_by_task=_metrics_by_task(),
            assumptions=json.dumps(project.assumptions),
        ),
    )


@login_required
@require_POST
def decision_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.DECIDE)
    form = DecisionForm(request.POST)
    if form.is_valid():
        try:
            services.project_decide(
                project=project,
                actor=request.user,
                decision=form.cleaned_data["decision"],
                rationale=form.cleaned_data["decision_rationale"],
            )
            messages.success(request, "Decision recorded.")
        except DomainError as exc:
            report(request, exc)
    else:
        messages.error(request, "Choose a decision.")
    return redirect("projects:problem", project.pk)


@login_required
@require_POST
def project_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.DELETE_PROJECT)
    if request.POST.get("confirm_name") != project.name:
        messages.error(request, "Type the project's name to confirm its deletion.")
        return redirect("projects:problem", project.pk)
    name = project.name
    services.project_delete(project=project, actor=request.user)
    messages.success(request, f"Project “{name}” deleted.")
    return redirect("projects:list")


@login_required
@require_http_methods(["GET", "POST"])
def members_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    form = MemberForm()
    if request.method == "POST":
        require(request.user, project, Action.MANAGE_MEMBERS)
        form = MemberForm(request.POST)
        if form.is_valid():
            try:
                services.member_add(project=project, actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                report(request, exc, form)
            else:
                messages.success(request, f"{form.cleaned_data['username']} added as {form.cleaned_data['role']}.")
                return redirect("projects:members", project.pk)
    members = project.memberships.select_related("user", "added_by")
    return render(
        request,
        "projects/members.html",
        project_context(request, project, "members", form=form, members=members, role_form=RoleForm()),
    )


@login_required
@require_POST
def member_change_view(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.MANAGE_MEMBERS)
    membership = Membership.objects.select_related("user", "project").filter(project=project, user_id=user_id).first()
    if membership is None:
        raise Http404
    try:
        if request.POST.get("remove"):
            services.member_remove(membership=membership, actor=request.user)
            messages.success(request, f"{membership.user.username} removed.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Choose a valid role.")
            else:
                services.member_update(membership=membership, actor=request.user, role=form.cleaned_data["role"])
                messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']}.")
    except DomainError as exc:
        report(request, exc)
    if not Membership.objects.filter(project=project, user=request.user).exists():
        return redirect("projects:list")
    return redirect("projects:members", project.pk)


@login_required
def audit_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk, Action.VIEW_AUDIT)
    return render(
        request, "projects/audit.html", project_context(request, project, "audit", events=audit_rows(project=project))
    )


@login_required
def jobs_view(request: HttpRequest, pk: int) -> HttpResponse:
    project = project_for(request.user, pk)
    # The list comes from the jobs app's `project_jobs` tag (jobs builds on projects).
    return render(request, "projects/jobs.html", project_context(request, project, "jobs"))


@login_required
@require_http_methods(["GET", "POST"])
def webhook_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Owners: the webhook URL, the signing secret (shown once), rotation and a test event."""
    project = project_for(request.user, pk, Action.MANAGE_CONNECTIONS)
    form, secret = WebhookForm(initial={"url": project.webhook_url}), None
    action = request.POST.get("action")
    try:
        if action == "url":
            form = WebhookForm(request.POST)
            if form.is_valid():
                webhook_settings.project_webhook_update(
                    project=project, actor=request.user, url=form.cleaned_data["url"], field="url"
                )
                messages.success(request, "Webhook URL saved.")
                return redirect("projects:webhook", project.pk)
        elif action == "rotate":
            project, secret = webhook_settings.project_webhook_rotate(project=project, actor=request.user)
        elif action == "reveal":
            # A POST, not a page view: a link or image elsewhere cannot spend the one showing.
            secret = webhook_settings.project_webhook_secret_reveal(project=project, actor=request.user)
    except DomainError as exc:
        report(request, exc, form if action == "url" else None)
    project.refresh_from_db()
    return render(
        request,
        "projects/webhook.html",
        project_context(
            request, project, "webhook", form=form, secret=secret, webhook=webhook_settings.project_webhook_of(project)
        ),
    )
