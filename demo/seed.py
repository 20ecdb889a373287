"""The demo project `make demo` creates: a loan-approval problem, ready to explore (its whole
loop, data to monitoring, is `demo.loop`)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from projects.models import Decision, Project
from projects.services import member_add, project_create, project_decide

logger = logging.getLogger(__name__)

DEMO_NAME = "Loan approvals (demo)"


def seed_demo(*, owner: Any, reviewer: Any | None = None) -> Project:
    existing = Project.objects.filter(name=DEMO_NAME, memberships__user=owner).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        project = project_create(
            created_by=owner,
            name=DEMO_NAME,
            task_type="classification",
            objective="Decide consumer loan applications in minutes instead of days, without more defaults.",
            usage="Loan officers see the model's recommendation; uncertain cases go to a human reviewer.",
            current_solution="Officers apply a scorecard by hand; it reaches an F1 of about 0.80 on past decisions.",
            success_metric="f1",
            success_threshold=0.85,
            baseline_score=0.80,
            # Decisions by cost: approving a loan that defaults loses far more than refusing a good
            # one earns; a reviewer's look costs a quarter hour of an officer's time.
            cost_matrix={"unit": "EUR", "false_positive": 500, "false_negative": 120, "review": 15},
            assumptions=[
                {"text": "Past decisions are representative of future applicants", "status": "unchecked"},
                {"text": "Applicants' income is reported honestly", "status": "holds"},
            ],
        )
        project_decide(
            project=project,
            actor=owner,
            decision=Decision.GO,
            rationale="Labelled history exists and faster decisions are worth it.",
        )
        if reviewer is not None:
            member_add(project=project, actor=owner, username=reviewer.get_username(), role="reviewer")
    return project
