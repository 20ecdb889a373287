"""Move the features of existing predictions from PostgreSQL's JSON column into columnar segments.

    manage.py prediction_store_migrate [--deployment 3] [--batch 5000]

Each batch is one transaction: the segment file is written, then the segment row is inserted
and the rows' `inputs` set to NULL together, so an interrupted run loses and doubles nothing
(run it again: it continues with the rows still in JSON; a file of a rolled-back batch is an
orphan that `prediction_store.orphans_sweep` deletes). Rows held for review, and rows with a
review item (flagged, decided), keep their inputs: the review pages read them there.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from deployments import prediction_store
from deployments.models import Prediction, PredictionStatus

COLUMNS = ("id", "project_id", "deployment_id", "model_version_id", "source", "inputs", "prediction", "confidence")


def migrate_batch(*, deployment_id: int | None, batch: int) -> int:
    """Move one batch; returns the rows moved (0: nothing left)."""
    with transaction.atomic():
        qs = Prediction.objects.filter(inputs__isnull=False, review__isnull=True).exclude(
            status=PredictionStatus.PENDING_REVIEW
        )  # reviewers read inputs in PostgreSQL
        if deployment_id:
            qs = qs.filter(deployment_id=deployment_id)
        rows = list(
            qs.order_by("deployment_id", "created_at")
            .select_for_update(skip_locked=True, of=("self",))
            .values(*COLUMNS, "created_at")[:batch]
        )
        if not rows:
            return 0
        prediction_store.rows_write(rows)
        Prediction.objects.filter(pk__in=[r["id"] for r in rows]).update(inputs=None)
    return len(rows)


class Command(BaseCommand):
    help = "Move existing predictions' features into the columnar prediction store."

    def add_arguments(self, parser):
        parser.add_argument("--deployment", type=int, default=None)
        parser.add_argument("--batch", type=int, default=5000)

    def handle(self, *args, deployment=None, batch=5000, **options):
        total = 0
        while moved := migrate_batch(deployment_id=deployment, batch=batch):
            total += moved
        self.stdout.write(f"moved {total} prediction(s) into segments")
