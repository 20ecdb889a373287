from __future__ import annotations

import pytest

from deployments.models import ReviewItem
from projects.workflow import workflow_for
from tests.reviews.conftest import uncertain_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def items(loan):
    return loan.predict(uncertain_rows(loan, 4))[1]


def test_queue_page_lists_items_and_health(client, team, items):
    client.force_login(team.reviewer)
    r = client.get(f"/projects/{team.project.pk}/reviews/")
    assert r.status_code == 200
    body = r.content.decode()
    for item in items:
        assert f'data-id="{item.pk}"' in body
    assert 'data-metric="pending">4' in body


def test_queue_page_outsider_404(client, team, items):
    client.force_login(team.outsider)
    assert client.get(f"/projects/{team.project.pk}/reviews/").status_code == 404
    assert client.get(f"/projects/{team.project.pk}/reviews/{items[0].pk}/").status_code == 404
    assert client.post(f"/projects/{team.project.pk}/reviews/{items[0].pk}/", {"action": "approve"}).status_code == 404


def test_item_from_another_project_is_404_under_this_url(client, team, items):
    client.force_login(team.outsider)
    assert client.get(f"/projects/{team.other_project.pk}/reviews/{items[0].pk}/").status_code == 404


def test_viewer_sees_item_but_cannot_decide(client, team, items):
    client.force_login(team.viewer)
    r = client.get(f"/projects/{team.project.pk}/reviews/{items[0].pk}/")
    assert r.status_code == 200 and b'id="decide-form"' not in r.content
    assert client.post(f"/projects/{team.project.pk}/reviews/{items[0].pk}/", {"action": "approve"}).status_code == 403
    assert client.post(f"/projects/{team.project.pk}/reviews/bulk-approve/", {"ids": [items[0].pk]}).status_code == 403
    assert ReviewItem.objects.filter(status="pending").count() == 4


def test_opening_an_item_claims_it_and_deciding_moves_on(client, team, items):
    client.force_login(team.reviewer)
    r = client.get(f"/projects/{team.project.pk}/reviews/{items[0].pk}/")
    assert r.status_code == 200 and b'id="decide-form"' in r.content and b'data-attribution="income"' in r.content
    items[0].refresh_from_db()
    assert items[0].claimed_by == team.reviewer
    r = client.post(f"/projects/{team.project.pk}/reviews/{items[0].pk}/", {"action": "approve", "status": "pending"})
    assert r.status_code == 302 and f"/reviews/{items[1].pk}/" in r["Location"]
    items[0].refresh_from_db()
    assert items[0].status == "approved" and items[0].claimed_by is None


def test_bad_override_label_changes_nothing(client, team, items):
    client.force_login(team.reviewer)
    r = client.post(
        f"/projects/{team.project.pk}/reviews/{items[0].pk}/", {"action": "override", "label": "maybe"}, follow=True
    )
    assert b"Unknown class" in r.content
    items[0].refresh_from_db()
    assert items[0].status == "pending"


def test_item_claimed_by_another_is_read_only(client, team, items):
    from deployments.reviews.services import review_claim

    review_claim(item=items[0], actor=team.editor)
    client.force_login(team.reviewer)
    r = client.get(f"/projects/{team.project.pk}/reviews/{items[0].pk}/")
    assert b"claim-error" in r.content and b'id="decide-form"' not in r.content


def test_bulk_approve_page(client, team, items):
    client.force_login(team.editor)
    r = client.post(f"/projects/{team.project.pk}/reviews/bulk-approve/", {"ids": [i.pk for i in items[:3]]})
    assert r.status_code == 302
    assert ReviewItem.objects.filter(status="approved").count() == 3


def test_health_page_and_panel(client, team, loan, items):
    client.force_login(team.viewer)
    r = client.get(f"/projects/{team.project.pk}/reviews/health/{loan.deployment.pk}/")
    assert r.status_code == 200 and b'id="advice"' in r.content and b'data-current="1"' in r.content
    client.force_login(team.outsider)
    assert client.get(f"/projects/{team.project.pk}/reviews/health/{loan.deployment.pk}/").status_code == 404


def test_workflow_stage_reports_the_queue(team, loan, items):
    stage = {s.key: s for s in workflow_for(project=team.project)}["review"]
    assert stage.state == "in_progress" and "4 item(s) waiting" in stage.detail


def test_moving_to_another_item_releases_the_previous_claim(client, team, items):
    client.force_login(team.reviewer)
    client.get(f"/projects/{team.project.pk}/reviews/{items[0].pk}/")
    client.get(f"/projects/{team.project.pk}/reviews/{items[1].pk}/")
    claimed = dict(ReviewItem.objects.filter(pk__in=[items[0].pk, items[1].pk]).values_list("pk", "claimed_by"))
    assert claimed == {items[0].pk: None, items[1].pk: team.reviewer.pk}


def test_review_panel_renders_with_only_the_deployment(team, loan, items):
    from django.template.loader import render_to_string

    html = render_to_string(
        "deployments/_review_panel.html", {"deployment": loan.deployment, "health": {"pending": "not ours"}}
    )
    assert 'data-metric="pending">4' in html and "not ours" not in html


def test_queue_hides_items_other_reviewers_have_open(client, team, items):
    from deployments.reviews.services import review_claim

    review_claim(item=items[0], actor=team.editor)
    client.force_login(team.reviewer)
    body = client.get(f"/projects/{team.project.pk}/reviews/").content.decode()
    assert f'data-id="{items[0].pk}"' not in body and "1 open with another reviewer" in body
    body = client.get(f"/projects/{team.project.pk}/reviews/?claimed=show").content.decode()
    assert f'data-id="{items[0].pk}"' in body and "claimed by eddie" in body
    client.force_login(team.editor)  # the claimer still sees it
    assert f'data-id="{items[0].pk}"' in client.get(f"/projects/{team.project.pk}/reviews/").content.decode()


def test_owner_sets_threshold_from_the_advice_table(client, team, loan, items):
    from deployments.models import Deployment

    page_url = f"/projects/{team.project.pk}/reviews/health/{loan.deployment.pk}/"
    client.force_login(team.owner)
    assert b'data-use-threshold="0.7"' in client.get(page_url).content
    assert client.post(page_url, {"review_threshold": "0.7"}).status_code == 302
    assert Deployment.objects.get(pk=loan.deployment.pk).review_threshold == 0.7
    r = client.post(
        page_url,
        {
            "review_threshold": "0.75",
            "review_mode": "flag",
            "review_sla_minutes": "45",
            "class_thresholds": "reject=0.9",
            "always_review": "",
            "sample_rate": "0.02",
            "review_webhook_url": "",
        },
    )
    assert r.status_code == 302
    d = Deployment.objects.get(pk=loan.deployment.pk)
    assert (d.review_threshold, d.review_mode, d.review_sla_minutes) == (0.75, "flag", 45)
    assert d.review_policy == {"class_thresholds": {"reject": 0.9}, "always_review": [], "sample_rate": 0.02}
    r = client.post(page_url, {"class_thresholds": "reject:0.9"}, follow=True)
    assert b"label=threshold" in r.content
    assert Deployment.objects.get(pk=loan.deployment.pk).review_policy["class_thresholds"] == {"reject": 0.9}


def test_reviewer_cannot_change_the_policy(client, team, loan, items):
    page_url = f"/projects/{team.project.pk}/reviews/health/{loan.deployment.pk}/"
    client.force_login(team.reviewer)
    assert b'id="policy-form"' not in client.get(page_url).content
    assert client.post(page_url, {"review_threshold": "0.1"}).status_code == 403
