"""Datasets and their immutable versions, preparation recipes, SQL connections.

Contract used by the other apps (implemented in datasets/selectors.py and recipes.py):
- `version_frame(version) -> DataFrame`: every row of a ready version;
- `split_frames(version) -> SplitFrames(train, val)`: never the test rows;
- `locked_test_frame(version, *, purpose)`: the locked test rows, for the one final evaluation only.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import models
from django.db.models import Q


class Dataset(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name_per_project")]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class VersionSource(models.TextChoices):
    UPLOAD = "upload", "Uploaded file"
    URL = "url", "HTTP(S) URL"
    SQL = "sql", "SQL query"
    APPEND = "append", "Appended rows"
    RECIPE = "recipe", "Recipe applied"
    RETRAIN = "retrain", "Training data + labelled production data"
    GENERATED = "generated", "Generated (demo)"


def url_shown(url: str) -> str:
    """A source URL as every role may read it: query values and fragments masked (a signed or
    token-bearing link, `...?token=abc`, stays with whoever pasted it)."""
    parts = urlsplit(url or "")
    query = "&".join(f"{pair.split('=', 1)[0]}=…" if "=" in pair else pair for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, query, ""))


class DatasetVersion(models.Model):
    """One immutable state of a dataset, stored as Parquet under a generated key.

    Identical content shares one stored file (`content_hash`). The split (train / validation /
    locked test assignment per row) is stored beside it and never rewritten once set.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="dataset_versions")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.PROCESSING)
    error = models.TextField(blank=True)
    source = models.CharField(max_length=12, choices=VersionSource.choices)
    source_detail = models.JSONField(default=dict, blank=True)  # original filename (display only), URL, query
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    upload_key = models.CharField(max_length=300, blank=True)  # raw upload, until ingested
    storage_key = models.CharField(max_length=300, blank=True)  # Parquet of the rows
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(null=True, blank=True)
    column_count = models.IntegerField(null=True, blank=True)
    schema = models.JSONField(default=list, blank=True)  # [{"name", "dtype"}]
    profile = models.JSONField(default=dict, blank=True)  # per column + table-level exploration
    warnings = models.JSONField(default=list, blank=True)  # [{"kind", "column", "severity", "message", "fix"}]
    target_column = models.CharField(max_length=200, blank=True)  # for imbalance / leakage checks
    split = models.JSONField(null=True, blank=True)  # {"strategy", "test_size", "val_size", "seed", "column", "counts"}
    split_key = models.CharField(max_length=300, blank=True)  # Parquet: one int8 per row, 0 train 1 val 2 test
    test_locked = models.BooleanField(default=False)
    test_used_at = models.DateTimeField(null=True, blank=True)  # set by the one final evaluation

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="version_unique_number_per_dataset"),
            models.CheckConstraint(condition=Q(status__in=VersionStatus.values), name="version_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def source_shown(self) -> dict:
        """`source_detail` as pages and the API show it: the URL masked (`url_shown`), no query text."""
        detail = {k: v for k, v in (self.source_detail or {}).items() if k != "query"}
        if detail.get("url"):
            detail["url"] = url_shown(detail["url"])
        return detail


class Recipe(models.Model):
    """A declarative preparation recipe: JSON steps compiled into a scikit-learn pipeline.

    Saving a recipe under the same name makes a new version; old versions stay as experiments
    used them.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="recipes")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="recipes")
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    steps = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name", "version"], name="recipe_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class SqlConnection(models.Model):
    """A named database connection registered by an owner; the DSN is encrypted and never shown."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="sql_connections")
    name = models.CharField(max_length=80)
    dsn_encrypted = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="sqlconnection_unique_name")]

    def __str__(self) -> str:
        return self.name
