"""The final evaluation's verdict says which end of the interval crosses the bar: the low end of a
score (F1 "reaches below"), the high end of an error (RMSE "reaches above")."""

from __future__ import annotations

from experiments.evaluation import verdict_for
from projects.models import Project


def test_a_score_whose_interval_reaches_below_the_threshold():
    project = Project(
        name="p", task_type="classification", success_metric="f1", success_threshold=0.8, baseline_score=0.7
    )
    verdict = verdict_for(project, "f1", {"f1": {"value": 0.83, "ci_low": 0.76, "ci_high": 0.9}})
    assert verdict["meets_threshold"] is True
    assert "reaches below the threshold" in verdict["text"]


def test_an_error_whose_interval_reaches_above_the_threshold():
    project = Project(
        name="p", task_type="regression", success_metric="rmse", success_threshold=25.0, baseline_score=38.0
    )
    verdict = verdict_for(project, "rmse", {"rmse": {"value": 22.0, "ci_low": 19.0, "ci_high": 27.0}})
    assert verdict["meets_threshold"] is True and verdict["beats_baseline"] is True
    assert "reaches above the threshold" in verdict["text"] and "below" not in verdict["text"]


def test_no_caveat_when_the_whole_interval_clears_the_bar():
    project = Project(
        name="p", task_type="regression", success_metric="rmse", success_threshold=25.0, baseline_score=38.0
    )
    verdict = verdict_for(project, "rmse", {"rmse": {"value": 20.0, "ci_low": 18.0, "ci_high": 23.0}})
    assert "interval reaches" not in verdict["text"]
