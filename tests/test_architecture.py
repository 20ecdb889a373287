"""The code's shape, as tests: size limits, thin job handlers, one home for metrics and for Redis.

The import rules (layers between apps, an ML core without Django, the deployments rooms talking
through services and selectors) are import-linter contracts in pyproject.toml, run by `make lint`;
`test_import_contracts_hold` runs them here too. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("mlplatform", "accounts", "projects", "jobs", "datasets", "experiments", "deployments", "demo")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Data tables may be long (a literal list is not logic). None is needed today; an entry here
# names the module and the table, with the reason.
DATA_TABLES: set[tuple[str, str]] = set()

# Nothing pending: every module, function and handler follows the rules. A list stays for the
# day a parallel branch needs one (each test also fails when an entry no longer exceeds its limit).
PENDING_MODULES: set[str] = set()
PENDING_FUNCTIONS: set[tuple[str, str]] = set()
PENDING_HANDLERS: set[str] = set()


def _modules() -> Iterator[tuple[str, str]]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield str(path.relative_to(ROOT)), path.read_text()


def _functions(source: str) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def test_no_application_module_over_600_lines():
    too_long = {path: text.count("\n") for path, text in _modules() if text.count("\n") > MAX_MODULE_LINES}
    assert set(too_long) - PENDING_MODULES == set(), f"modules over {MAX_MODULE_LINES} lines: {too_long}"
    assert PENDING_MODULES - set(too_long) == set(), "no longer too long: remove from PENDING_MODULES"


def test_no_function_over_80_lines():
    too_long = {
        (path, node.name): _length(node)
        for path, text in _modules()
        for node in _functions(text)
        if _length(node) > MAX_FUNCTION_LINES and (path, node.name) not in DATA_TABLES
    }
    assert set(too_long) - PENDING_FUNCTIONS == set(), f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"
    assert PENDING_FUNCTIONS - set(too_long) == set(), "no longer too long: remove from PENDING_FUNCTIONS"


def _handlers(source: str) -> Iterator[ast.FunctionDef]:
    for node in _functions(source):
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            if call is not None and getattr(call.func, "id", getattr(call.func, "attr", "")) == "job_handler":
                yield node


def _handler_problems(node: ast.FunctionDef) -> list[str]:
    """What CONTRIBUTING.md's rule forbids in a handler: queries, transactions, long bodies."""
    problems = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr == "objects":
            problems.append("queries the database")
        if isinstance(sub, ast.Name) and sub.id == "transaction":
            problems.append("opens a transaction")
    if _length(node) > 15:
        problems.append(f"is {_length(node)} lines long")
    return problems


def test_job_handlers_only_take_ids_and_call_a_service():
    found: dict[str, list[str]] = {}
    handlers = 0
    for path, text in _modules():
        for node in _handlers(text):
            handlers += 1
            problems = _handler_problems(node)
            if problems:
                found.setdefault(path, []).append(f"{node.name} {', '.join(sorted(set(problems)))}")
    assert handlers >= 10  # the test sees the handlers (webhooks, experiments, deployments...)
    assert set(found) - PENDING_HANDLERS == set(), f"handlers doing a service's work: {found}"
    assert PENDING_HANDLERS - set(found) == set(), "follows the rule now: remove from PENDING_HANDLERS"


SKLEARN_METRICS = {
    "accuracy_score",
    "balanced_accuracy_score",
    "precision_score",
    "recall_score",
    "f1_score",
    "roc_auc_score",
    "log_loss",
    "mean_squared_error",
    "mean_absolute_error",
    "r2_score",
    "mean_absolute_percentage_error",
}


def test_each_metric_is_computed_in_one_module():
    """Evaluation, live performance and the retrain's comparison all call experiments.ml.metrics."""
    users = {
        path
        for path, text in _modules()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Attribute | ast.Name)
        and (getattr(node, "attr", None) or getattr(node, "id", None)) in SKLEARN_METRICS
    }
    assert users == {"experiments/ml/metrics.py"}


def test_the_metric_table_covers_every_computed_metric():
    from experiments.ml.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
    from projects.metrics import METRICS

    assert set(CLASSIFICATION_METRICS) == {m.name for m in METRICS.values() if m.task_type == "classification"}
    assert set(REGRESSION_METRICS) == {m.name for m in METRICS.values() if m.task_type == "regression"}


def test_one_redis_client():
    makers = {
        path
        for path, text in _modules()
        if "Redis.from_url(" in text or "redis.Redis(" in text or "StrictRedis(" in text
    }
    assert makers == {"mlplatform/redis.py"}


@pytest.mark.timeout(120)
def test_import_contracts_hold():
    """No cycle between apps, an ML core without Django, rooms talking through services and selectors."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout
