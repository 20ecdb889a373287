"""The catalogue of scikit-learn estimators and their default search spaces.

A search space is `{param: spec}` where spec is one of
- `{"type": "int", "low", "high", "log"?}` / `{"type": "float", "low", "high", "log"?}`
- `{"type": "categorical", "choices": [...]}`
Grid search expands int/float specs into `grid_points` values (or uses `"values"` when given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

CLASSIFICATION = "classification"
REGRESSION = "regression"
SEED = 42


@dataclass(frozen=True)
class Algorithm:
    key: str
    label: str
    task_type: str
    factory: Callable[..., Any]
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # always passed (seeds, iterations)
    baseline: bool = False
    # The estimator whose parameters the search space names, when `factory` wraps it.
    tuned: Callable[[Any], Any] | None = None

    def build(self, params: dict[str, Any] | None = None) -> Any:
        return self.factory(**{**self.fixed, **(params or {})})

    def tunable(self) -> Any:
        built = self.build()
        return self.tuned(built) if self.tuned is not None else built


def calibrated_svc(**params: Any) -> CalibratedClassifierCV:
    """An SVC with calibrated probabilities (Platt scaling on cross-validated decision values, one
    SVC refit on all rows): what SVC(probability=True) did, deprecated in scikit-learn 1.9, whose
    warning names this replacement. Its `predict` agrees with its probabilities."""
    return CalibratedClassifierCV(SVC(**params), ensemble=False)


def _i(low: int, high: int, log: bool = False) -> dict[str, Any]:
    return {"type": "int", "low": low, "high": high, "log": log}


def _f(low: float, high: float, log: bool = False) -> dict[str, Any]:
    return {"type": "float", "low": low, "high": high, "log": log}


def _c(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


_TREE = {"max_depth": _i(2, 20), "min_samples_leaf": _i(1, 20, True)}
_FOREST = {
    "n_estimators": _i(50, 300, True),
    "max_depth": _c(None, 5, 10, 20),
    "min_samples_leaf": _i(1, 10, True),
    "max_features": _c("sqrt", 0.5, 1.0),
}
_HGB = {
    "learning_rate": _f(0.01, 0.3, True),
    "max_leaf_nodes": _i(8, 64, True),
    "min_samples_leaf": _i(5, 50, True),
    "l2_regularization": _f(1e-6, 1.0, True),
}
# LightGBM: leaf-wise boosting; the usual knobs (trees x learning rate, tree size, minimum leaf,
# column sampling, L2). One thread per trial: trials run in parallel across workers instead.
_LGBM = {
    "n_estimators": _i(50, 500, True),
    "learning_rate": _f(0.01, 0.3, True),
    "num_leaves": _i(8, 128, True),
    "min_child_samples": _i(5, 100, True),
    "colsample_bytree": _f(0.5, 1.0),
    "reg_lambda": _f(1e-6, 10.0, True),
}
_LGBM_FIXED = {"random_state": SEED, "n_jobs": 1, "verbose": -1}
_KNN = {"n_neighbors": _i(1, 50, True), "weights": _c("uniform", "distance")}
_MLP = {
    "hidden_layer_sizes": _c(32, 64, 128),
    "alpha": _f(1e-5, 1e-1, True),
    "learning_rate_init": _f(1e-4, 1e-2, True),
}

_ALGORITHMS = [
    # Classification
    Algorithm("dummy", "Dummy (most frequent)", CLASSIFICATION, DummyClassifier, {}, {"strategy": "prior"}, True),
    Algorithm(
        "logistic",
        "Logistic regression",
        CLASSIFICATION,
        LogisticRegression,
        {"C": _f(1e-3, 100.0, True)},
        {"max_iter": 2000},
        True,
    ),
    Algorithm("ridge", "Ridge classifier", CLASSIFICATION, RidgeClassifier, {"alpha": _f(1e-3, 100.0, True)}),
    Algorithm("decision_tree", "Decision tree", CLASSIFICATION, DecisionTreeClassifier, _TREE, {"random_state": SEED}),
    Algorithm(
        "random_forest",
        "Random forest",
        CLASSIFICATION,
        RandomForestClassifier,
        _FOREST,
        {"random_state": SEED, "n_jobs": 1},
    ),
    Algorithm(
        "extra_trees", "Extra trees", CLASSIFICATION, ExtraTreesClassifier, _FOREST, {"random_state": SEED, "n_jobs": 1}
    ),
    Algorithm(
        "hist_gradient_boosting",
        "Histogram gradient boosting",
        CLASSIFICATION,
        HistGradientBoostingClassifier,
        _HGB,
        {"random_state": SEED},
    ),
    Algorithm("lightgbm", "LightGBM", CLASSIFICATION, LGBMClassifier, _LGBM, _LGBM_FIXED),
    Algorithm(
        "svm",
        "Support vector machine",
        CLASSIFICATION,
        calibrated_svc,
        {"C": _f(1e-2, 100.0, True), "gamma": _c("scale", "auto"), "kernel": _c("rbf", "linear")},
        # Probabilities (for ROC AUC, log loss, thresholds and soft voting) come from the calibration.
        {"random_state": SEED},
        tuned=lambda calibrated: calibrated.estimator,
    ),
    Algorithm("knn", "k nearest neighbours", CLASSIFICATION, KNeighborsClassifier, _KNN),
    Algorithm(
        "naive_bayes", "Gaussian naive Bayes", CLASSIFICATION, GaussianNB, {"var_smoothing": _f(1e-11, 1e-5, True)}
    ),
    Algorithm(
        "mlp",
        "Neural network (MLP)",
        CLASSIFICATION,
        MLPClassifier,
        _MLP,
        {"random_state": SEED, "max_iter": 300, "early_stopping": True},
    ),
    # Regression
    Algorithm("dummy", "Dummy (mean)", REGRESSION, DummyRegressor, {}, {"strategy": "mean"}, True),
    Algorithm("linear", "Linear regression", REGRESSION, LinearRegression, {}, {}, True),
    Algorithm("ridge", "Ridge", REGRESSION, Ridge, {"alpha": _f(1e-3, 100.0, True)}),
    Algorithm("lasso", "Lasso", REGRESSION, Lasso, {"alpha": _f(1e-4, 10.0, True)}, {"max_iter": 5000}),
    Algorithm("decision_tree", "Decision tree", REGRESSION, DecisionTreeRegressor, _TREE, {"random_state": SEED}),
    Algorithm(
        "random_forest",
        "Random forest",
        REGRESSION,
        RandomForestRegressor,
        _FOREST,
        {"random_state": SEED, "n_jobs": 1},
    ),
    Algorithm(
        "extra_trees", "Extra trees", REGRESSION, ExtraTreesRegressor, _FOREST, {"random_state": SEED, "n_jobs": 1}
    ),
    Algorithm(
        "hist_gradient_boosting",
        "Histogram gradient boosting",
        REGRESSION,
        HistGradientBoostingRegressor,
        _HGB,
        {"random_state": SEED},
    ),
    Algorithm("lightgbm", "LightGBM", REGRESSION, LGBMRegressor, _LGBM, _LGBM_FIXED),
    Algorithm(
        "svm",
        "Support vector machine",
        REGRESSION,
        SVR,
        {"C": _f(1e-2, 100.0, True), "epsilon": _f(1e-3, 1.0, True), "kernel": _c("rbf", "linear")},
    ),
    Algorithm("knn", "k nearest neighbours", REGRESSION, KNeighborsRegressor, _KNN),
    Algorithm(
        "mlp",
        "Neural network (MLP)",
        REGRESSION,
        MLPRegressor,
        _MLP,
        {"random_state": SEED, "max_iter": 300, "early_stopping": True},
    ),
]

CATALOGUE: dict[tuple[str, str], Algorithm] = {(a.task_type, a.key): a for a in _ALGORITHMS}
BASELINES = {CLASSIFICATION: ["dummy", "logistic"], REGRESSION: ["dummy", "linear"]}
DEFAULT_ALGORITHMS = {
    CLASSIFICATION: ["logistic", "random_forest", "hist_gradient_boosting"],
    REGRESSION: ["ridge", "random_forest", "hist_gradient_boosting"],
}


class CatalogueError(ValueError):
    def __init__(self, message: str, field: str = "algorithms"):
        super().__init__(message)
        self.field = field


def algorithms_for(task_type: str) -> list[Algorithm]:
    return [a for a in _ALGORITHMS if a.task_type == task_type]


def get_algorithm(task_type: str, key: str) -> Algorithm:
    try:
        return CATALOGUE[(task_type, key)]
    except KeyError:
        known = ", ".join(a.key for a in algorithms_for(task_type))
        raise CatalogueError(f"Unknown algorithm {key!r} for {task_type}; choose from {known}.") from None


def validate_space(algorithm: Algorithm, space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check a user-edited search space: known parameters, sane bounds. Returns it normalised."""
    if not isinstance(space, dict):
        raise CatalogueError("A search space is an object of parameter specs.", "search")
    valid = set(algorithm.tunable().get_params(deep=False))
    out: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        where = f"{algorithm.key}.{name}"
        if name not in valid:
            raise CatalogueError(f"{where}: {algorithm.label} has no parameter {name!r}.", "search")
        if not isinstance(spec, dict) or spec.get("type") not in ("int", "float", "categorical"):
            raise CatalogueError(f"{where}: type must be int, float or categorical.", "search")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise CatalogueError(f"{where}: choices must be a non-empty list.", "search")
            if not all(c is None or isinstance(c, (str, int, float, bool)) for c in choices):
                raise CatalogueError(f"{where}: choices must be plain values.", "search")
            out[name] = {"type": "categorical", "choices": choices}
            continue
        low, high = spec.get("low"), spec.get("high")
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
            raise CatalogueError(f"{where}: low and high must be numbers with low <= high.", "search")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise CatalogueError(f"{where}: a log scale needs low > 0.", "search")
        if spec["type"] == "int":
            low, high = int(low), int(high)
        out[name] = {"type": spec["type"], "low": low, "high": high, "log": log}
        if "values" in spec:
            out[name]["values"] = list(spec["values"])
    return out


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-safe values (numpy scalars to Python)."""
    out = {}
    for k, v in params.items():
        if hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def estimator_params(algorithm: Algorithm, params: dict[str, Any]) -> dict[str, Any]:
    """JSON params to constructor arguments (an MLP's layer size becomes a tuple)."""
    out = dict(params)
    if algorithm.key == "mlp" and "hidden_layer_sizes" in out and isinstance(out["hidden_layer_sizes"], int):
        out["hidden_layer_sizes"] = (out["hidden_layer_sizes"],)
    return out
