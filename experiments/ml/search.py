"""Suggesting the next trial's parameters: grid, random, or Bayesian (Optuna TPE).

Nothing here keeps state between calls: the experiment's finished runs (in our own tables) are
the search history. For TPE, an in-memory Optuna study is rebuilt from that history on each
call and asked for one more trial (ask/tell), so any worker can suggest the next trial and a
restarted worker loses nothing.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("grid", "random", "tpe")


@dataclass(frozen=True)
class Finished:
    params: dict[str, Any]
    score: float | None  # None: the trial failed


def grid_values(spec: dict[str, Any], points: int = 3) -> list[Any]:
    if "values" in spec:
        return list(spec["values"])
    if spec["type"] == "categorical":
        return list(spec["choices"])
    low, high = spec["low"], spec["high"]
    if spec.get("log"):
        values = np.geomspace(low, high, points)
    else:
        values = np.linspace(low, high, points)
    if spec["type"] == "int":
        return sorted({round(v) for v in values})
    return [float(v) for v in values]


def grid(space: dict[str, dict[str, Any]], points: int = 3) -> list[dict[str, Any]]:
    if not space:
        return [{}]
    names = sorted(space)
    combos = itertools.product(*(grid_values(space[n], points) for n in names))
    return [dict(zip(names, c, strict=True)) for c in combos]


def random_params(space: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    for name in sorted(space):
        spec = space[name]
        if spec["type"] == "categorical":
            out[name] = rng.choice(spec["choices"])
        elif spec.get("log"):
            value = math.exp(rng.uniform(math.log(spec["low"]), math.log(spec["high"])))
            out[name] = round(value) if spec["type"] == "int" else value
        elif spec["type"] == "int":
            out[name] = rng.randint(spec["low"], spec["high"])
        else:
            out[name] = rng.uniform(spec["low"], spec["high"])
    return out


def _distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            out[name] = CategoricalDistribution(spec["choices"])
        elif spec["type"] == "int":
            out[name] = IntDistribution(spec["low"], spec["high"], log=spec.get("log", False))
        else:
            out[name] = FloatDistribution(spec["low"], spec["high"], log=spec.get("log", False))
    return out


def tpe_params(
    space: dict[str, dict[str, Any]], history: list[Finished], *, higher_is_better: bool, seed: int
) -> dict[str, Any]:
    """One TPE suggestion given the finished trials of this algorithm."""
    import optuna

    if not space:
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = _distributions(space)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    study = optuna.create_study(direction="maximize" if higher_is_better else "minimize", sampler=sampler)
    for past in history:
        params = {k: v for k, v in past.params.items() if k in distributions}
        if set(params) != set(distributions):
            continue  # the space was edited since; this trial does not fit it
        try:
            for k, v in params.items():
                if not distributions[k]._contains(distributions[k].to_internal_repr(v)):
                    raise ValueError(k)
        except (ValueError, TypeError):
            continue
        state = optuna.trial.TrialState.COMPLETE if past.score is not None else optuna.trial.TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=past.score if past.score is not None else None,
                state=state,
            )
        )
    trial = study.ask(distributions)
    return dict(trial.params)


def suggest(
    method: str,
    space: dict[str, dict[str, Any]],
    *,
    index: int,
    history: list[Finished],
    higher_is_better: bool,
    seed: int = 42,
) -> dict[str, Any] | None:
    """Parameters of this algorithm's `index`-th trial; None when a grid is exhausted."""
    if method == "grid":
        points = grid(space)
        return points[index] if index < len(points) else None
    if method == "random":
        return random_params(space, seed * 100_003 + index)
    if method == "tpe":
        return tpe_params(space, history, higher_is_better=higher_is_better, seed=seed + index)
    raise ValueError(f"Unknown search method {method!r}.")
