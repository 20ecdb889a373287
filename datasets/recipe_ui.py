"""What the recipe editor (static/js/recipe-editor.js) needs: the step catalogue with each
op's fields, a version's columns and kinds, the automatic recipe and previews.

Shared by the dataset version page and the New experiment form. The previews and the
automatic recipe read a bounded sample of the version's non-test rows (never the locked test
set), like the API's recipe preview.
"""

from __future__ import annotations

import json
from typing import Any

from datasets import auto_recipe, selectors
from datasets.models import DatasetVersion, Recipe, VersionStatus
from datasets.recipes import DATE_PARTS, ENCODE, IMPUTE, OUTLIERS, SCALE, STEP_REFERENCE, RecipeError, preview
from datasets.rows import frame_rows
from mlplatform import jsonguard
from mlplatform.errors import InvalidInput

SAMPLE_ROWS = 2000  # rows read for previews and for spotting messy categories
MAX_STEPS_BYTES = 200_000

# The fields of each op, for the structured editor: (key, kind, options, help).
# kind: columns (several), column (one), choice, choices (several), number, integer, text, bool.
OP_FIELDS: dict[str, list[dict[str, Any]]] = {
    "drop_columns": [{"key": "columns", "kind": "columns", "required": True}],
    "clean_categories": [
        {"key": "columns", "kind": "columns", "help": "Empty: every categorical column."},
        {"key": "merge_similar", "kind": "bool", "default": True, "help": "Merge rare near-identical spellings."},
    ],
    "impute": [
        {"key": "columns", "kind": "columns", "help": "Empty: every column with missing values."},
        {"key": "strategy", "kind": "choice", "options": list(IMPUTE), "default": "median"},
        {"key": "value", "kind": "text", "help": "For the constant strategy."},
    ],
    "drop_duplicates": [],
    "remove_outliers": [
        {"key": "columns", "kind": "columns", "help": "Empty: every numeric column."},
        {"key": "method", "kind": "choice", "options": list(OUTLIERS), "default": "iqr"},
        {"key": "threshold", "kind": "number", "help": "1.5 for IQR, 3 for z-score."},
    ],
    "encode": [
        {"key": "columns", "kind": "columns", "help": "Empty: every categorical column."},
        {"key": "method", "kind": "choice", "options": list(ENCODE), "default": "onehot"},
    ],
    "scale": [
        {"key": "columns", "kind": "columns", "help": "Empty: every numeric column."},
        {"key": "method", "kind": "choice", "options": list(SCALE), "default": "standard"},
    ],
    "date_parts": [
        {"key": "columns", "kind": "columns", "help": "Empty: every date column."},
        {"key": "parts", "kind": "choices", "options": list(DATE_PARTS), "default": ["year", "month", "dayofweek"]},
    ],
    "ratio": [
        {"key": "numerator", "kind": "column", "required": True},
        {"key": "denominator", "kind": "column", "required": True},
        {"key": "name", "kind": "text"},
    ],
    "age": [
        {"key": "column", "kind": "column", "required": True},
        {"key": "name", "kind": "text"},
        {"key": "reference", "kind": "text", "help": "ISO date; default today."},
    ],
    "uppercase_ratio": [{"key": "column", "kind": "column", "required": True}, {"key": "name", "kind": "text"}],
    "tfidf": [
        {"key": "column", "kind": "column", "required": True},
        {"key": "max_features", "kind": "integer", "default": 200},
    ],
    "pca": [{"key": "n_components", "kind": "integer", "required": True}],
    "select_k_best": [{"key": "k", "kind": "integer", "required": True}],
}


def version_columns(version: DatasetVersion) -> list[dict[str, Any]]:
    profile = {c["name"]: c for c in (version.profile or {}).get("columns", [])}
    return [
        {"name": c["name"], "kind": profile.get(c["name"], {}).get("kind", "")}
        for c in (version.schema or [])
        if c.get("name")
    ]


def editor_config(version: DatasetVersion, *, project_recipes: bool = True) -> dict[str, Any]:
    """The editor's json_script payload for one version (the form may switch versions)."""
    recipes = Recipe.objects.filter(project=version.project).order_by("name", "-version") if project_recipes else []
    return {
        "ops": list(OP_FIELDS),
        "fields": OP_FIELDS,
        "reference": STEP_REFERENCE,
        "recipes": [{"id": r.pk, "label": f"{r.name} v{r.version}", "name": r.name, "steps": r.steps} for r in recipes],
    }


def _ready(version: DatasetVersion) -> None:
    if version.status != VersionStatus.READY:
        raise InvalidInput(f"The dataset version is {version.status}, not ready.", field="dataset_version")


def _target(version: DatasetVersion, target: str) -> str:
    names = [c.get("name") for c in version.schema or []]
    if target and target not in names:
        raise InvalidInput(f"The column {target!r} is not in this dataset version.", field="target")
    return target


def automatic(version: DatasetVersion, *, target: str) -> dict[str, Any]:
    """The automatic recipe (steps with reasons) for `target` on this version."""
    _ready(version)
    target = _target(version, target)
    profile = version.profile or {}
    sample = selectors.version_sample(version, rows=SAMPLE_ROWS)
    columns = profile.get("columns") or _sample_facts(sample)
    suggestions = auto_recipe.suggest(columns=columns, warnings=version.warnings or [], target=target, sample=sample)
    return {
        "version": version.pk,
        "target": target,
        "columns": version_columns(version),
        "steps": [s.as_dict() for s in suggestions],
    }


def _sample_facts(sample) -> list[dict[str, Any]]:
    """Column facts from the sample when the version has no profile (yet): kind, missing, unique."""
    from datasets.kinds import infer_kind

    n = max(1, len(sample))
    facts = []
    for name in sample.columns:
        col = sample[name]
        missing = int(col.isna().sum())
        facts.append(
            {
                "name": str(name),
                "kind": infer_kind(col),
                "missing": missing,
                "missing_share": missing / n,
                "unique": int(col.nunique()),
            }
        )
    return facts


def parse_steps(raw: Any, *, field: str = "recipe_steps") -> list[dict]:
    """Steps from a form field or a JSON body: a list, or a 400 naming the field."""
    if isinstance(raw, list):
        return raw
    text = str(raw or "").strip()
    if not text:
        return []
    if len(text) > MAX_STEPS_BYTES:
        raise InvalidInput(f"The recipe is longer than {MAX_STEPS_BYTES} characters.", field=field)
    try:
        steps = jsonguard.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InvalidInput(f"The recipe is not valid JSON{where}.", field=field) from None
    if not isinstance(steps, list):
        raise InvalidInput("A recipe is a list of steps: [{...}, {...}].", field=field)
    return steps


def check_steps(version: DatasetVersion, *, steps: list[dict], target: str) -> None:
    """Compile the steps against a sample of this version for this target: a bad step is a 400
    naming it (`steps[2].columns`), before anything is saved."""
    from datasets.recipes import compile_recipe

    _ready(version)
    target = _target(version, target)
    try:
        compile_recipe(steps, frame=selectors.version_sample(version, rows=500), target=target)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object body, or a 400 (too deep nesting included, never a 500)."""
    try:
        body = jsonguard.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("The request body is not valid JSON.", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object.", field="body")
    return body


def preview_payload(version: DatasetVersion, *, steps: list[dict], target: str, rows: int = 12) -> dict[str, Any]:
    """The steps fitted on a sample of the version's training rows: before / after and mappings."""
    _ready(version)
    target = _target(version, target)
    sample = selectors.version_sample(version, rows=SAMPLE_ROWS)
    try:
        result = preview(steps, frame=sample, target=target, rows=rows)
    except RecipeError as exc:
        raise InvalidInput(str(exc), field=exc.field) from None
    before, after = result.pop("before"), result.pop("after")
    result["before"] = {"columns": [str(c) for c in before.columns], "rows": frame_rows(before)}
    result["after"] = {"columns": [str(c) for c in after.columns], "rows": frame_rows(after)}
    result["sample_rows"] = len(sample)
    return result
