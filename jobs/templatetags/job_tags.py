"""Job lists for other apps' pages (a project's overview and jobs tab), with their rolled-up status.

A tag rather than a view context: `projects` sits below `jobs` in the layers and cannot import
it; its templates ask the jobs app for the widget instead. The caller has already checked that
the user may see the project.
"""

from __future__ import annotations

from django import template

from jobs.models import Job
from jobs.selectors import job_rollup, with_rollups

register = template.Library()


@register.simple_tag
def project_jobs(project, limit: int = 8, top_level: bool = False) -> list[Job]:
    """The project's newest jobs (top-level only: a training job, not each of its trials)."""
    jobs = Job.objects.filter(project=project).select_related("created_by")
    if top_level:
        jobs = jobs.filter(parent__isnull=True)
    return with_rollups(job_rollup(jobs)[:limit])
