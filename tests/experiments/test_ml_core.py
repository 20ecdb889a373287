"""The Django-free training core: catalogue round-trips, search, CV without leakage, bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from experiments.ml import catalogue, diagnostics, metrics, search, training
from mlplatform.artifacts import model_dumps, model_loads

SMALL = {
    "random_forest": {"n_estimators": 5},
    "extra_trees": {"n_estimators": 5},
    "mlp": {"hidden_layer_sizes": 8},
}


def _frame(task: str, n: int = 80):
    if task == "classification":
        X, y = make_classification(n_samples=n, n_features=5, n_informative=3, random_state=0)
        y = np.where(y == 1, "yes", "no")
    else:
        X, y = make_regression(n_samples=n, n_features=5, noise=5, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    return X, pd.Series(y)


def _prep():
    return ColumnTransformer([("num", StandardScaler(), [f"f{i}" for i in range(5)])])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_catalogue_algorithm_round_trips_through_skops(task):
    X, y = _frame(task)
    algos = catalogue.algorithms_for(task)
    assert len(algos) >= 10
    for algo in algos:
        est = algo.build(catalogue.estimator_params(algo, SMALL.get(algo.key, {})))
        pipe = training.build_pipeline(_prep(), est).fit(X, y)
        loaded = model_loads(model_dumps(pipe))
        np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X), err_msg=algo.key)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_ensemble_round_trips_through_skops(task):
    X, y = _frame(task)
    members = [
        (
            "a",
            training.build_pipeline(_prep(), catalogue.get_algorithm(task, "random_forest").build({"n_estimators": 5})),
        ),
        ("b", training.build_pipeline(_prep(), catalogue.get_algorithm(task, "knn").build({}))),
    ]
    model = training.ensemble_pipeline(members, task).fit(X, y)
    loaded = model_loads(model_dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if task == "classification":
        np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_grid_expands_every_combination():
    space = {"a": {"type": "categorical", "choices": [1, 2]}, "b": {"type": "int", "low": 1, "high": 9, "log": False}}
    points = search.grid(space)
    assert len(points) == 6
    assert {p["b"] for p in points} == {1, 5, 9}
    assert search.suggest("grid", space, index=6, history=[], higher_is_better=True) is None


def test_random_search_stays_in_bounds_and_is_reproducible():
    space = catalogue.get_algorithm("classification", "hist_gradient_boosting").space
    a = [search.random_params(space, seed=i) for i in range(20)]
    b = [search.random_params(space, seed=i) for i in range(20)]
    assert a == b
    for p in a:
        assert 0.01 <= p["learning_rate"] <= 0.3
        assert 8 <= p["max_leaf_nodes"] <= 64


def test_tpe_moves_toward_good_region():
    space = {"x": {"type": "float", "low": 0.0, "high": 10.0, "log": False}}
    history = []
    for i in range(25):
        params = search.tpe_params(space, history, higher_is_better=False, seed=i)
        history.append(search.Finished(params, (params["x"] - 2.0) ** 2))
    best = min(history, key=lambda h: h.score)
    assert abs(best.params["x"] - 2.0) < 0.7
    late = [h.params["x"] for h in history[-10:]]
    assert np.median([abs(x - 2.0) for x in late]) < 2.5


def test_preprocessing_is_fitted_inside_each_fold():
    """A scaler fitted on all rows would see the validation fold; ours sees only training rows."""
    seen: list[int] = []

    class CountingScaler(StandardScaler):
        def fit(self, X, y=None, sample_weight=None):
            seen.append(len(X))
            return super().fit(X, y)

    X, y = _frame("classification", n=90)
    prep = ColumnTransformer([("num", CountingScaler(), list(X.columns))])
    pipe = training.build_pipeline(prep, catalogue.get_algorithm("classification", "logistic").build())
    cv = training.make_cv("stratified", 3, y, None, "classification")
    result = training.cross_validate_pipeline(pipe, X, y, task_type="classification", cv=cv)
    assert seen == [60, 60, 60]
    assert set(result.cv_metrics) == set(metrics.CLASSIFICATION_METRICS)
    assert 0.5 < result.cv_metrics["accuracy"]["mean"] <= 1.0


def test_row_filter_touches_training_folds_only():
    X, y = _frame("regression", n=60)
    calls = []

    def drop_first(Xt, yt):
        calls.append(len(Xt))
        return Xt.iloc[1:], yt.iloc[1:]

    pipe = training.build_pipeline(_prep(), catalogue.get_algorithm("regression", "linear").build())
    cv = training.make_cv("kfold", 3, y, None, "regression")
    training.cross_validate_pipeline(pipe, X, y, task_type="regression", cv=cv, row_filter=drop_first)
    assert calls == [40, 40, 40]


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.8, y, 1 - y)
    proba = np.column_stack([1 - pred * 0.8, pred * 0.8])
    out = metrics.bootstrap_ci("classification", y, pred, proba, np.array([0, 1]), n_boot=200)
    for name in metrics.CLASSIFICATION_METRICS:
        m = out[name]
        assert m["ci_low"] <= m["value"] <= m["ci_high"], name
    acc = out["accuracy"]
    assert 0.65 < acc["ci_low"] < acc["ci_high"] < 0.9
    assert 0.05 < acc["ci_high"] - acc["ci_low"] < 0.2  # about 4 standard errors of a proportion, n=200


def test_segments_put_the_worst_first():
    X = pd.DataFrame({"region": ["ocean"] * 30 + ["inland"] * 30})
    y = np.array([1] * 60)
    pred = np.array([0] * 15 + [1] * 15 + [1] * 30)
    rows = diagnostics.segment_errors(X, y, pred, "classification")
    assert rows[0]["segment"] == "ocean" and rows[0]["value"] == 0.5
    assert rows[-1]["segment"] == "inland"


def test_validate_space_rejects_unknown_parameter():
    algo = catalogue.get_algorithm("classification", "random_forest")
    with pytest.raises(catalogue.CatalogueError, match="no parameter"):
        catalogue.validate_space(algo, {"nonsense": {"type": "int", "low": 1, "high": 2}})
    with pytest.raises(catalogue.CatalogueError, match="low <= high"):
        catalogue.validate_space(algo, {"max_depth": {"type": "int", "low": 5, "high": 2}})


@pytest.mark.parametrize("k", [2, 3])
def test_fast_bootstrap_metrics_equal_scikit_learn(k):
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, 150)
    proba = rng.dirichlet(np.ones(k), 150)
    proba[np.arange(150), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    fast = metrics.fast_classification_metrics(y, pred, proba, k)
    slow = metrics.reference_classification_metrics(y, pred, proba, np.arange(k))
    via_labels = metrics.compute_metrics("classification", y, pred, proba, np.arange(k))
    for name in metrics.CLASSIFICATION_METRICS:
        assert fast[name] == pytest.approx(slow[name], abs=1e-9), name
        assert via_labels[name] == pytest.approx(slow[name], abs=1e-9), name


def test_predict_all_labels_equal_predict_for_every_classifier():
    X, y = _frame("classification")
    for algo in catalogue.algorithms_for("classification"):
        est = algo.build(catalogue.estimator_params(algo, SMALL.get(algo.key, {})))
        pipe = training.build_pipeline(_prep(), est).fit(X, y)
        pred, _ = training.predict_all(pipe, X, "classification")
        np.testing.assert_array_equal(pred, pipe.predict(X), err_msg=algo.key)


def test_multiclass_diagnostics_without_curves():
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    order = np.random.default_rng(0).permutation(len(data.target))
    X = data.data.iloc[order, :5].reset_index(drop=True)
    y = pd.Series(np.array(["a", "b", "c"])[data.target.to_numpy()[order]])
    prep = ColumnTransformer([("num", StandardScaler(), list(X.columns))])
    model = training.build_pipeline(prep, catalogue.get_algorithm("classification", "logistic").build()).fit(
        X[:120], y[:120]
    )
    out = diagnostics.diagnostics(
        model, X[:120], y[:120], X[120:], y[120:], task_type="classification", primary_metric="f1"
    )
    assert np.array(out["confusion_matrix"]).shape == (3, 3)
    assert np.array(out["confusion_matrix"]).sum() == len(y) - 120
    assert "roc" not in out and "thresholds" not in out
    assert out["metrics"]["roc_auc"] is not None
    assert len(out["learning_curve"]["validation"]) == 4


def test_grouped_folds_keep_groups_apart():
    X, y = _frame("regression", n=60)
    groups = pd.Series(np.repeat(np.arange(12), 5))
    cv = training.make_cv("group", 3, y, groups, "regression")
    for tr, va in cv.split(X, y, groups):
        assert not set(groups.iloc[tr]) & set(groups.iloc[va])


def test_a_validation_label_unseen_in_training_is_counted_not_fatal():
    out = metrics.compute_metrics(
        "classification", np.array(["a", "b", "z"]), np.array(["a", "a", "b"]), None, np.array(["a", "b"])
    )
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["roc_auc"] is None


def test_the_svm_gives_probabilities_without_a_deprecation_warning():
    """SVC(probability=True) is deprecated in scikit-learn 1.9: the catalogue calibrates instead."""
    import warnings

    X, y = _frame("classification")
    algo = catalogue.get_algorithm("classification", "svm")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        pipe = training.build_pipeline(_prep(), algo.build({"C": 1.0, "kernel": "rbf"})).fit(X, y)
        pred, proba = training.predict_all(pipe, X, "classification")
    assert proba is not None and proba.shape == (len(X), 2)
    assert (pred == pipe.predict(X)).all()  # calibrated predict agrees with its probabilities


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_lightgbm_trials_from_its_default_space_learn(task):
    algo = catalogue.get_algorithm(task, "lightgbm")
    space = catalogue.validate_space(algo, algo.space)  # every name is a parameter of the estimator
    assert {"n_estimators", "learning_rate", "num_leaves", "min_child_samples"} <= set(space)
    params = search.suggest("tpe", space, index=0, history=[], higher_is_better=True)
    est = algo.build(catalogue.estimator_params(algo, params))
    assert est.get_params()["n_jobs"] == 1 and est.get_params()["verbose"] == -1
    X, y = _frame(task, n=200)
    cv = training.make_cv("auto", 3, y, None, task)
    result = training.cross_validate_pipeline(training.build_pipeline(_prep(), est), X, y, task_type=task, cv=cv)
    if task == "classification":
        assert result.cv_metrics["roc_auc"]["mean"] > 0.75  # 0.5 is chance
    else:
        assert result.cv_metrics["r2"]["mean"] > 0.3  # 0 is the mean's
