from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs.models import Job
from jobs.redaction import job_public_params, job_public_result
from jobs.runner import job_cancel
from jobs.selectors import children_summaries, job_rollup, rollup, running_child_message
from jobs.webhooks import project_webhook_test
from mlplatform.errors import DomainError
from projects.access import access, can, project_for
from projects.roles import Action
from projects.views import project_context


@login_required
def job_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = access(request.user, job_rollup(Job.objects.select_related("project", "created_by")), pk)
    summary = children_summaries([job]).get(job.pk)
    busy = running_child_message(job) if summary and summary.active else ""
    # A display copy (never saved): the template shows only what the handler declared public.
    job.params, job.result = job_public_params(job), job_public_result(job)
    return render(
        request,
        "jobs/detail.html",
        project_context(
            request,
            job.project,
            "jobs",
            job=job,
            rolled=rollup(job, summary, running_child_message=busy),
            can_cancel=can(request.user, job.project, Action.CANCEL_JOB),
            show_traceback=can(request.user, job.project, Action.VIEW_TRACEBACK),
        ),
    )


@login_required
@require_POST
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = access(request.user, Job, pk, Action.CANCEL_JOB)
    job_cancel(job=job, actor=request.user)
    messages.success(request, "Cancellation requested.")
    return redirect("jobs:detail", job.pk)


@login_required
@require_POST
def webhook_test_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Owners: send a signed test event to the project's webhook, then follow its delivery job."""
    project = project_for(request.user, pk, Action.MANAGE_CONNECTIONS)
    try:
        job = project_webhook_test(project=project, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("projects:webhook", project.pk)
    messages.success(request, f"Test event queued (job #{job.pk}).")
    return redirect("jobs:detail", job.pk)
