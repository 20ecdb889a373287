"""Decisions by cost: the project's cost matrix (API and form, 400s naming the key), the cost
analysis of a run and of a deployment (validation rows and reviewer decisions), the one-click
apply through the existing services (audited), roles and cross-project access."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from deployments.models import Deployment, DeploymentChange, ReviewItem
from deployments.reviews.services import review_decide, review_policy_update
from experiments.ml import costs
from projects.models import AuditEvent, Project
from tests.deployments.test_predict_api import GOOD, key_client, post

pytestmark = pytest.mark.django_db

CM = {"unit": "EUR", "false_positive": 5, "false_negative": 20, "review": 1}


def with_validation(deployment, n=1500, seed=0):
    """The version's run gets validation scores as its diagnostics store them."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = np.clip(rng.normal(np.where(y, 0.65, 0.35), 0.18), 0, 0.999)
    run = deployment.model_version.run
    run.diagnostics = {"n_val": n, "positive_class": "yes", "score_hist": costs.hist_to_json(costs.score_hist(s, y))}
    run.save()
    return run


def set_costs(project, cm=CM):
    Project.objects.filter(pk=project.pk).update(cost_matrix=cm)


def url(deployment):
    return f"/api/v1/deployments/{deployment.pk}/costs/"


def test_the_cost_matrix_is_part_of_the_problem_statement(team, api):
    base = f"/api/v1/projects/{team.project.pk}/"
    r = api("owner").patch(base, {"cost_matrix": CM}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["cost_matrix"] == {**CM, "false_positive": 5.0, "false_negative": 20.0, "review": 1.0} | {
        "true_positive": 0.0,
        "true_negative": 0.0,
    }
    event = AuditEvent.objects.filter(action="project.updated").latest("id")
    assert "cost_matrix" in event.data["changed"]
    for body, field in [
        ({**CM, "false_positive": -1}, "cost_matrix.false_positive"),
        ({**CM, "review": "a lot"}, "cost_matrix.review"),
        ({**CM, "unit": ""}, "cost_matrix.unit"),
        ({**CM, "surprise": 1}, "cost_matrix.surprise"),
        ("five euros", "cost_matrix"),
    ]:
        r = api("owner").patch(base, {"cost_matrix": body}, format="json")
        assert r.status_code == 400, (body, r.content)
        assert field in r.json()["errors"], r.json()
    assert Project.objects.get(pk=team.project.pk).cost_matrix["false_positive"] == 5.0
    r = api("owner").patch(base, {"cost_matrix": None}, format="json")
    assert r.status_code == 200 and r.json()["cost_matrix"] is None


def test_a_regression_project_has_no_cost_matrix(team, api):
    r = api("owner").post(
        "/api/v1/projects/", {"name": "amounts", "task_type": "regression", "cost_matrix": CM}, format="json"
    )
    assert r.status_code == 400 and "cost_matrix" in r.json()["errors"]
    assert not Project.objects.filter(name="amounts").exists()


def test_the_problem_form_takes_the_costs_and_names_the_bad_one(team, client):
    client.force_login(team.owner)
    page = client.get(f"/projects/{team.project.pk}/problem/").content.decode()
    assert 'name="cost_false_positive"' in page
    form = {"name": team.project.name, "task_type": "classification", "assumptions_json": "[]"}
    bad = client.post(f"/projects/{team.project.pk}/problem/", {**form, "cost_unit": "EUR", "cost_false_positive": 5})
    assert bad.status_code == 200 and "false negative" in bad.content.decode()
    assert Project.objects.get(pk=team.project.pk).cost_matrix is None
    ok = {**form, "cost_unit": "EUR", "cost_false_positive": "5", "cost_false_negative": "20", "cost_review": "1"}
    assert client.post(f"/projects/{team.project.pk}/problem/", ok).status_code == 302
    saved = Project.objects.get(pk=team.project.pk).cost_matrix
    assert saved["review"] == 1.0 and saved["unit"] == "EUR" and saved["true_negative"] == 0.0
    page = client.get(f"/projects/{team.project.pk}/problem/").content.decode()
    assert 'name="cost_review"' in page and 'value="1.0"' in page


def test_the_run_analysis_puts_cost_optimal_next_to_f1_optimal(team, api, deployment):
    run = with_validation(deployment)
    r = api("viewer").get(f"/api/v1/runs/{run.pk}/costs/")
    assert r.status_code == 200 and r.json()["available"] is False and "cost matrix" in r.json()["why"]
    set_costs(team.project)
    body = api("viewer").get(f"/api/v1/runs/{run.pk}/costs/").json()
    a = body["analysis"]
    assert a["best"]["cost"] < a["f1_optimal"]["cost"] and a["best"]["cost"] < a["default"]["cost"]
    assert a["best"]["cost_ci"][0] <= a["best"]["cost"] <= a["best"]["cost_ci"][1] and a["n"] == 1500
    less_sure = api("viewer").get(f"/api/v1/runs/{run.pk}/costs/?reviewer_accuracy=0.8").json()["analysis"]
    assert less_sure["best"]["cost"] > a["best"]["cost"]
    for bad in ("0.2", "abc", "1.5"):
        r = api("viewer").get(f"/api/v1/runs/{run.pk}/costs/?reviewer_accuracy={bad}")
        assert r.status_code == 400 and "reviewer_accuracy" in r.json()["errors"]
    assert api("outsider").get(f"/api/v1/runs/{run.pk}/costs/").status_code == 404


def test_the_deployment_advice_and_one_click_apply(team, api, deployment):
    body = api("viewer").get(url(deployment)).json()
    assert body["available"] is False and "cost matrix" in body["why"]
    set_costs(team.project)
    with_validation(deployment)
    body = api("viewer").get(url(deployment)).json()
    adv = body["advice"]
    assert body["current"] == {"threshold": 0.5, "band": None}
    assert adv["source"] == "validation" and adv["advise"] is True and adv["band"] is not None
    assert adv["cost"] < adv["current_cost"] and adv["saving"]["ci"][0] > 0
    assert body["live"]["available"] is False and body["live"]["decided"] == 0
    r = api("editor").post(
        url(deployment), {"threshold": adv["threshold"], "band": adv["band"], "reason": "cheaper"}, format="json"
    )
    assert r.status_code == 200, r.content
    d = Deployment.objects.get(pk=deployment.pk)
    low, high = adv["band"]
    assert d.active_threshold == adv["threshold"]
    assert d.review_policy["class_thresholds"] == {"yes": high, "no": pytest.approx(1 - low)}
    after = r.json()
    assert after["current"]["threshold"] == adv["threshold"]
    assert after["current"]["band"] == [pytest.approx(low), pytest.approx(high)]
    assert after["advice"]["advise"] is False  # applied: nothing left to save
    change = DeploymentChange.objects.get(deployment=d, action="threshold")
    assert change.reason == "cheaper"
    assert AuditEvent.objects.filter(action="deployment.threshold_set").count() == 1
    policy = AuditEvent.objects.get(action="deployment.review_policy_updated")
    assert policy.data["changed"]["review_policy"]["to"]["class_thresholds"]["yes"] == high
    # No band: the class thresholds then route nothing by confidence.
    r = api("editor").post(url(deployment), {"threshold": 0.3, "band": None}, format="json")
    assert r.status_code == 200 and r.json()["current"]["band"] is None


@pytest.mark.parametrize(
    "body,field",
    [
        ({"threshold": 0, "band": None}, "threshold"),
        ({"threshold": "x", "band": None}, "threshold"),
        ({"threshold": 0.4, "band": [0.5, 0.6]}, "band"),
        ({"threshold": 0.4, "band": [0.3]}, "band"),
        ({"threshold": 0.4, "band": [0.3, 1.2]}, "band"),
        ({"threshold": 0.4}, "band"),
        ({"threshold": 0.4, "band": None, "sample_rate": 1}, "sample_rate"),
    ],
)
def test_bad_apply_input_is_refused_naming_the_field(team, api, deployment, body, field):
    r = api("editor").post(url(deployment), body, format="json")
    assert r.status_code == 400 and field in r.json()["errors"], r.content
    d = Deployment.objects.get(pk=deployment.pk)
    assert d.decision_threshold is None and not d.review_policy
    assert not DeploymentChange.objects.filter(action="threshold").exists()


def test_costs_roles_and_cross_project(team, api, deployment):
    body = {"threshold": 0.4, "band": [0.3, 0.5]}
    assert api("outsider").get(url(deployment)).status_code == 404
    assert api("outsider").post(url(deployment), body, format="json").status_code == 404
    assert api("viewer").post(url(deployment), body, format="json").status_code == 403
    assert api("reviewer").post(url(deployment), body, format="json").status_code == 403
    assert Deployment.objects.get(pk=deployment.pk).decision_threshold is None
    assert api("editor").post(url(deployment), body, format="json").status_code == 200


def test_the_ui_apply_and_its_bad_input(team, client, deployment):
    set_costs(team.project)
    with_validation(deployment)
    client.force_login(team.viewer)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="cost-advice"' in page and 'id="cost-apply"' not in page and 'id="cost-chart"' in page
    assert client.post(f"/deployments/{deployment.pk}/costs/", {"threshold": "0.4"}).status_code == 403
    client.force_login(team.editor)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="cost-apply"' in page
    r = client.post(f"/deployments/{deployment.pk}/costs/", {"threshold": "abc"}, follow=True)
    assert "threshold: a probability" in r.content.decode()
    r = client.post(
        f"/deployments/{deployment.pk}/costs/", {"threshold": "0.4", "band_low": "0.5", "band_high": "0.6"}, follow=True
    )
    assert "band:" in r.content.decode()
    assert Deployment.objects.get(pk=deployment.pk).decision_threshold is None
    r = client.post(
        f"/deployments/{deployment.pk}/costs/", {"threshold": "0.4", "band_low": "0.3", "band_high": "0.6"}, follow=True
    )
    assert "review band [0.3, 0.6]" in r.content.decode()
    assert Deployment.objects.get(pk=deployment.pk).active_threshold == 0.4


def test_the_live_estimate_rests_on_weighted_reviewer_decisions(team, api, deployment):
    set_costs(team.project)
    review_policy_update(deployment=deployment, actor=team.owner, review_policy={"sample_rate": 1.0})
    client, _ = key_client(deployment, team.editor)
    incomes = np.linspace(20_000, 80_000, 40)
    r = post(client, deployment, {"instances": [{**GOOD, "income": float(x)} for x in incomes]})
    assert r.status_code == 200, r.content
    items = list(ReviewItem.objects.filter(deployment=deployment).select_related("prediction"))
    assert len(items) == 40
    body = api("viewer").get(url(deployment)).json()
    assert body["live"]["decided"] == 0 and "30" in body["live"]["why"]
    for item in items:
        truth = "yes" if item.prediction.inputs["income"] > 50_000 else "no"
        review_decide(item=item, actor=team.reviewer, action="override", label=truth)
    body = api("viewer").get(url(deployment)).json()
    live = body["live"]
    assert live["available"] is True and live["decided"] == 40 and live["sample"] == 40
    assert live["analysis"]["n"] == pytest.approx(40.0)
    assert live["analysis"]["best"]["cost_ci"][0] is not None
    assert body["advice"]["source"] == "live"  # no validation scores: the live estimate is all there is
    with_validation(deployment)
    body = api("viewer").get(url(deployment)).json()
    assert body["live"]["available"] is True
    assert body["advice"]["source"] == "validation"  # 40 QC-sample decisions: not enough to replace it
    ui = Client()
    ui.force_login(team.viewer)
    page = ui.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "Re-estimated on 40 reviewer decisions (40 from the QC sample" in page
    assert "until 150 decisions come from the QC sample" in page and 'id="cost-chart-live"' in page


def test_openapi_schema_lists_the_cost_paths(api):
    paths = api("viewer").get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/deployments/{id}/costs/"])
    assert "get" in paths["/api/v1/runs/{id}/costs/"]
    body = paths["/api/v1/deployments/{id}/costs/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "CostApply" in body["$ref"]


def test_the_demo_project_has_a_cost_matrix(team):
    from demo.seed import seed_demo

    project = seed_demo(owner=team.owner)
    assert project.cost_matrix["unit"] == "EUR" and project.cost_matrix["review"] > 0


def test_validation_scores_of_the_other_class_are_not_used(team, api, deployment):
    set_costs(team.project)
    run = with_validation(deployment)
    run.diagnostics["positive_class"] = "no"
    run.save()
    body = api("viewer").get(url(deployment)).json()
    assert body["validation"]["available"] is False and "'no'" in body["validation"]["why"]
    assert body["advice"] is None


def test_older_diagnostics_without_scores_offer_a_recompute(team, client, deployment):
    set_costs(team.project)
    run = deployment.model_version.run
    run.diagnostics = {"n_val": 10, "positive_class": "yes", "thresholds": []}
    run.save()
    client.force_login(team.editor)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "recompute) its diagnostics" in page and 'id="cost-recompute"' in page
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert 'id="cost-validation-why"' in page and f'href="/runs/{run.pk}/"' in page
