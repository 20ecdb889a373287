"""Serving's rows: deployment API keys, every prediction served, refused calls per minute."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import models


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 v7): prediction ids are made in-process, index-friendly."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | (0x7 << 76)
        | ((rand >> 62) & 0xFFF) << 64
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return uuid.UUID(int=value)


class ApiKey(models.Model):
    """A deployment API key: scoped to one deployment, shown once, stored as a SHA-256."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    rate_per_minute = models.PositiveIntegerField(default=6000)  # new keys: settings.API_KEY_RATE_PER_MINUTE
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"key “{self.name}” ({self.prefix}…)"


class PredictionStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    PENDING_REVIEW = "pending_review", "Pending review"
    REVIEWED = "reviewed", "Reviewed"


class Prediction(models.Model):
    """Every prediction served, with its inputs, outputs and (later) its ground truth."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey("deployments.ModelVersion", on_delete=models.CASCADE, related_name="predictions")
    source = models.CharField(max_length=10, default="api")  # api, batch, shadow, simulator
    # The features as sent. Null once they are in a columnar segment (PredictionSegment): the
    # drainers write them there; only rows written another way (held for review, the request's
    # own fallback, the embedded SQLite mode, old rows) keep them here. Read them through
    # deployments.prediction_store, never from this column directly.
    inputs = models.JSONField(null=True, blank=True)
    prediction = models.JSONField()
    confidence = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    # The decision threshold on the positive class that decided `prediction` (None: argmax).
    decision_threshold = models.FloatField(null=True, blank=True)
    interval = models.JSONField(null=True, blank=True)  # regression: [low, high]
    status = models.CharField(max_length=15, choices=PredictionStatus.choices, default=PredictionStatus.ACCEPTED)
    final_prediction = models.JSONField(null=True, blank=True)  # after review
    latency_ms = models.FloatField(null=True, blank=True)
    caller = models.CharField(max_length=120, blank=True)  # "user:12" or "key:34"
    actual = models.JSONField(null=True, blank=True)  # ground truth
    actual_source = models.CharField(max_length=10, blank=True)  # feedback, review
    actual_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["deployment", "created_at"]),
            models.Index(fields=["deployment", "actual_at"]),
            # The few rows whose features are still here (not in a segment), found fast per window.
            models.Index(
                fields=["deployment", "created_at"],
                condition=models.Q(inputs__isnull=False),
                name="prediction_json_inputs",
            ),
        ]


class PredictionSegment(models.Model):
    """One Parquet file of the columnar prediction store: the features and outputs of the rows one
    drain inserted, written before and recorded IN THE SAME TRANSACTION as those Prediction rows,
    or one batch chunk's predictions (segment only: `segment_only_rows`). A file no segment row
    points at is an orphan (a crash between write and commit) and the sweeper deletes it: every
    logged row is in exactly one committed segment or keeps its inputs in PostgreSQL."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="segments")
    path = models.CharField(max_length=300, unique=True)  # a default_storage key
    rows = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    min_time = models.DateTimeField()
    max_time = models.DateTimeField()
    hour = models.DateTimeField()  # the partition (min_time's hour)
    compacted = models.BooleanField(default=False)  # the hour's segments merged into this one
    caller = models.CharField(max_length=40, blank=True)  # "job:12": a batch job's (deleted if it is re-delivered)
    # Rows that have no Prediction row: a batch job's predictions (its output carries no prediction
    # id, so nothing looks them up one by one). All or none of a segment's rows; never compacted.
    segment_only_rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["min_time"]
        indexes = [models.Index(fields=["deployment", "max_time"]), models.Index(fields=["deployment", "hour"])]


# The one place a logged prediction's columns are spelled out. Every writer of the log builds
# its rows from these: the predict request (`logged_prediction`, then an ORM INSERT or the Redis
# queue), the queue's drainer (`INSERT ... SELECT FROM jsonb_to_recordset`, typed below) and the
# batch logging job (COPY of an Arrow table in this column order).
LOGGED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("project_id", "bigint"),
    ("deployment_id", "bigint"),
    ("model_version_id", "bigint"),
    ("source", "text"),
    ("inputs", "jsonb"),
    ("prediction", "jsonb"),
    ("confidence", "double precision"),
    ("probabilities", "jsonb"),
    ("decision_threshold", "double precision"),
    ("status", "text"),
    ("caller", "text"),
    ("latency_ms", "double precision"),
    ("created_at", "timestamptz"),
)
# The other columns, filled later (review, ground truth). Raw SQL writers must give them these
# values: Django's field defaults live in Python, not in the table (actual_source is NOT NULL).
LATER_COLUMNS: dict[str, Any] = {
    "interval": None,
    "final_prediction": None,
    "actual": None,
    "actual_source": "",
    "actual_at": None,
}
LOGGED_NAMES: tuple[str, ...] = tuple(name for name, _ in LOGGED_COLUMNS)
CALLER_MAX = 120  # Prediction.caller's max_length


def logged_prediction(
    *,
    id: Any,
    project_id: int,
    deployment_id: int,
    model_version_id: int,
    source: str,
    inputs: Any,
    prediction: Any,
    confidence: float | None,
    probabilities: dict[str, float] | None,
    status: str,
    caller: str,
    latency_ms: float | None,
    created_at: Any,
    decision_threshold: float | None = None,
) -> dict[str, Any]:
    """One logged prediction as {column: value}, in LOGGED_COLUMNS order."""
    return {
        "id": id,
        "project_id": project_id,
        "deployment_id": deployment_id,
        "model_version_id": model_version_id,
        "source": source,
        "inputs": inputs,
        "prediction": prediction,
        "confidence": confidence,
        "probabilities": probabilities,
        "decision_threshold": decision_threshold,
        "status": status,
        "caller": caller[:CALLER_MAX],
        "latency_ms": latency_ms,
        "created_at": created_at,
    }


class PredictionErrorCount(models.Model):
    """Refused or failed predict calls per deployment, minute and kind (validation, server, ...).

    Monitoring reads "error rate by kind" from here: a refused request writes no Prediction row,
    so its count lives in this small table, one upserted row per minute and kind.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey("deployments.Deployment", on_delete=models.CASCADE, related_name="error_counts")
    minute = models.DateTimeField()
    kind = models.CharField(max_length=20)  # validation, server, auth, rate_limited, paused
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "minute", "kind"], name="prediction_error_count_unique"),
        ]
