"""Leaderboard and final-evaluation picker: baselines are pinned references, candidates are
ranked by the project's success metric in its direction, the best candidate is pre-selected,
and a baseline or an overfitting run needs an explicit confirmation."""

from __future__ import annotations

import pytest
from django.test import Client

from experiments import selectors
from experiments.models import Experiment, Run
from tests.experiments.conftest import cancer_frame, make_version
from tests.factories import PASSWORD


def _run(exp, algorithm, kind, f1, *, train=None, recall=0.5, trial=0, status="succeeded"):
    if f1 is None:  # a failed trial has no scores
        return Run.objects.create(
            project=exp.project, experiment=exp, algorithm=algorithm, kind=kind, trial_number=trial, status=status
        )
    return Run.objects.create(
        project=exp.project,
        experiment=exp,
        algorithm=algorithm,
        kind=kind,
        trial_number=trial,
        status=status,
        score=f1,
        cv_metrics={"f1": {"mean": f1, "std": 0.02}, "recall": {"mean": recall, "std": 0.02}},
        train_metrics={"f1": train if train is not None else f1 + 0.01, "recall": recall},
    )


@pytest.fixture
def board(team):
    """A logistic baseline better than every candidate (what small data often gives)."""
    version = make_version(team.project, team.owner, cancer_frame(80), "diagnosis")
    exp = Experiment.objects.create(
        project=team.project,
        name="board",
        dataset_version=version,
        target="diagnosis",
        task_type="classification",
        metric="f1",
        status="succeeded",
        progress=100,
    )
    runs = {
        "dummy": _run(exp, "dummy", "baseline", 0.40),
        "logistic": _run(exp, "logistic", "baseline", 0.95),
        "forest": _run(exp, "random_forest", "candidate", 0.88, train=1.0, recall=0.99, trial=1),
        "tree": _run(exp, "decision_tree", "candidate", 0.85, recall=0.70, trial=2),
        "ensemble": _run(exp, "ensemble", "ensemble", 0.87, trial=3),
        "broken": _run(exp, "svm", "candidate", None, trial=4, status="failed"),
    }
    return exp, runs


def test_baselines_never_rank_first_nor_become_the_best_candidate(board):
    exp, runs = board
    ranked = selectors.ranking(exp)
    assert [r.pk for r in ranked.baselines] == [runs["logistic"].pk, runs["dummy"].pk]
    assert [r.pk for r in ranked.candidates] == [runs["forest"].pk, runs["ensemble"].pk, runs["tree"].pk]
    assert [r.pk for r in ranked.others] == [runs["broken"].pk]
    assert ranked.best == runs["forest"] == selectors.best_candidate(exp)


def test_candidates_rank_by_the_project_success_metric_in_its_direction(board, team):
    exp, runs = board
    team.project.success_metric = "recall"
    team.project.save()
    exp.refresh_from_db()
    assert selectors.ranking_metric(exp) == "recall"
    assert selectors.best_candidate(exp) == runs["forest"]  # recall 0.99
    # a lower-is-better metric ranks the smallest first
    for r, loss in ((runs["forest"], 0.5), (runs["tree"], 0.2), (runs["ensemble"], 0.3)):
        r.cv_metrics["log_loss"] = {"mean": loss, "std": 0.01}
        r.save()
    team.project.success_metric = "log_loss"
    team.project.save()
    exp.refresh_from_db()
    assert selectors.best_candidate(exp) == runs["tree"]
    # sorting the display by another metric keeps the best candidate by the ranking metric
    assert selectors.ranking(exp, sort="f1").best == runs["tree"]


def test_evaluation_warnings_name_baselines_and_overfitting(board):
    exp, runs = board
    assert "baseline" in selectors.evaluation_warnings(exp, runs["logistic"])[0]
    assert "overfits" in selectors.evaluation_warnings(exp, runs["forest"])[0]  # 1.0 on training, 0.88 CV
    assert selectors.evaluation_warnings(exp, runs["tree"]) == []


def _client(user) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def test_the_picker_preselects_the_best_candidate_and_flags_baselines(board, team):
    exp, runs = board
    r = _client(team.editor).get(f"/experiments/{exp.pk}/")
    html = r.content.decode()
    assert r.context["evaluate_selected"] == str(runs["forest"].pk)
    assert f'<option value="{runs["forest"].pk}" data-warnings=' in html
    best_row = html.index(f'data-run-id="{runs["forest"].pk}"')
    assert 'class="best"' in html[best_row : best_row + 120]
    assert html.index("Baselines: the bar to beat") < html.index("Candidates, best first by f1")


def test_evaluating_a_baseline_needs_confirm_server_side(board, team):
    exp, runs = board
    client = _client(team.editor)
    refused = client.post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["logistic"].pk})
    assert refused.status_code == 200  # the page again, the error at the confirmation box
    assert refused.context["evaluate_errors"]["confirm"].startswith(
        f"Run #{runs['logistic'].pk} (logistic) is a baseline"
    )
    exp.refresh_from_db()
    assert exp.evaluated_run_id is None and exp.dataset_version.test_used_at is None
    accepted = client.post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["logistic"].pk, "confirm": "1"})
    assert accepted.status_code == 302
    exp.refresh_from_db()
    assert exp.evaluated_run_id == runs["logistic"].pk


def test_evaluating_the_best_candidate_needs_no_confirm_unless_it_overfits(board, team):
    exp, runs = board
    client = _client(team.editor)
    overfits = client.post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["forest"].pk})
    assert overfits.status_code == 200 and "overfits" in overfits.context["evaluate_errors"]["confirm"]
    assert client.post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["tree"].pk}).status_code == 302


def test_evaluate_form_errors_and_permissions(board, team):
    exp, runs = board
    bad = _client(team.editor).post(f"/experiments/{exp.pk}/evaluate/", {"run": "abc"})
    assert bad.context["evaluate_errors"] == {"run": "Choose a run of this experiment."}
    assert _client(team.viewer).post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["tree"].pk}).status_code == 403
    assert _client(team.outsider).post(f"/experiments/{exp.pk}/evaluate/", {"run": runs["tree"].pk}).status_code == 404
    exp.refresh_from_db()
    assert exp.evaluated_run_id is None


def test_the_api_names_the_best_run_and_flags_baselines(board, api):
    exp, runs = board
    body = api("viewer").get(f"/api/v1/experiments/{exp.pk}/").json()
    assert body["best_run"] == runs["forest"].pk and body["ranking_metric"] == "f1"
    flags = {r["id"]: r["is_baseline"] for r in body["runs"]}
    assert flags[runs["logistic"].pk] is True and flags[runs["forest"].pk] is False
    assert body["runs"][0]["id"] == runs["logistic"].pk  # the existing order (by score) is unchanged
