"""A reviewer works through a hold-mode loan queue with the keyboard in Chromium; the calling
application receives each final decision on its webhook; the owner sees the queue's health."""

from __future__ import annotations

import json
import time

import pytest

from deployments.models import Prediction, ReviewItem
from jobs.models import Job
from tests.conftest import login, wait_for_job
from tests.reviews.conftest import uncertain_rows
from tests.reviews.test_concurrency_and_webhook import Receiver

pytestmark = pytest.mark.browser


def _on_item(page, item_id: int) -> None:
    page.wait_for_url(lambda url: f"/reviews/{item_id}/" in url)
    page.wait_for_selector(f'#review-title[data-id="{item_id}"]')


def test_reviewer_works_through_queue_with_keyboard(page, browser, live_server, team, loan, worker, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver()
    try:
        loan.deployment.review_webhook_url = receiver.url
        loan.deployment.save()
        type(team.project).objects.filter(pk=team.project.pk).update(webhook_secret="caller-secret")
        preds, items = loan.predict(uncertain_rows(loan, 4))
        assert [p.status for p in preds] == ["pending_review"] * 4
        ids = [i.pk for i in items]

        login(page, "rita")
        page.goto(f"/projects/{team.project.pk}/reviews/")
        assert page.locator("tr.queue-row").count() == 4
        page.keyboard.press("Enter")  # the first (oldest) row is current
        _on_item(page, ids[0])
        assert page.locator('[data-attribution="income"]').count() == 1
        assert page.locator('#features tr[data-feature="debt_ratio"]').count() == 1

        page.keyboard.press("a")  # approve -> next item
        _on_item(page, ids[1])
        page.keyboard.press("o")  # focus the label; the other class is preselected
        page.keyboard.press("Enter")
        _on_item(page, ids[2])
        page.keyboard.press("c")
        page.keyboard.type("Self-employed income needs a manager")
        page.keyboard.press("Escape")
        page.keyboard.press("e")  # escalate
        _on_item(page, ids[3])
        page.keyboard.press("k")  # no previous pending item (0, 1 decided, 2 escalated): stays here
        page.keyboard.press("a")
        page.wait_for_url(lambda url: url.split("?")[0].endswith(f"/projects/{team.project.pk}/reviews/"))
        assert "Nothing to review here" in page.locator("#queue").inner_text()

        statuses = dict(ReviewItem.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert statuses == {ids[0]: "approved", ids[1]: "overridden", ids[2]: "escalated", ids[3]: "approved"}
        assert ReviewItem.objects.get(pk=ids[2]).comment == "Self-employed income needs a manager"
        assert Prediction.objects.get(pk=items[1].prediction_id).final_prediction != items[1].model_label

        # The calling application hears about each final decision (not the escalation).
        for job in Job.objects.filter(kind="webhook.deliver"):
            assert wait_for_job(job.pk, timeout=60).status == "succeeded"
        deadline = time.monotonic() + 10
        while len(receiver.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        bodies = {json.loads(r["body"])["review_id"]: json.loads(r["body"]) for r in receiver.received}
        assert set(bodies) == {ids[0], ids[1], ids[3]}
        assert bodies[ids[1]]["final_label"] != items[1].model_label

        # The owner sees the override rate and the queue's age, then decides the escalated item.
        owner_ctx = browser.new_context(base_url=live_server.url)
        owner = owner_ctx.new_page()
        try:
            login(owner, "olivia")
            owner.goto(f"/projects/{team.project.pk}/reviews/health/{loan.deployment.pk}/")
            panel = owner.locator(".review-panel")
            assert "33.3%" in panel.locator('[data-metric="override-rate"]').inner_text()
            assert "1 escalated" in panel.locator('[data-metric="pending"]').inner_text()
            assert panel.locator('[data-metric="oldest"]').inner_text().strip() != "—"
            assert owner.locator("#advice tr[data-current]").count() == 1
            owner.goto(f"/projects/{team.project.pk}/reviews/{ids[2]}/?status=escalated")
            owner.keyboard.press("a")
            owner.wait_for_url(lambda url: f"/reviews/{ids[2]}/" not in url)
            assert ReviewItem.objects.get(pk=ids[2]).status == "approved"
        finally:
            owner_ctx.close()
    finally:
        receiver.close()


def test_bulk_approve_a_screened_selection_with_the_keyboard(page, team, loan):
    _, items = loan.predict(uncertain_rows(loan, 4))
    login(page, "eddie")
    page.goto(f"/projects/{team.project.pk}/reviews/?order=oldest")
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")
    page.keyboard.press("B")
    page.wait_for_selector(".messages li.success")
    assert "Approved 2 item(s)" in page.locator(".messages").inner_text()
    statuses = dict(ReviewItem.objects.filter(pk__in=[i.pk for i in items]).values_list("pk", "status"))
    assert [statuses[i.pk] for i in items] == ["approved", "pending", "approved", "pending"]


def test_viewer_page_has_no_decision_controls(page, team, loan):
    _, items = loan.predict(uncertain_rows(loan, 1))
    login(page, "victor")
    page.goto(f"/projects/{team.project.pk}/reviews/{items[0].pk}/")
    assert page.locator("#decide-form").count() == 0
    page.keyboard.press("a")
    time.sleep(0.3)
    assert ReviewItem.objects.get(pk=items[0].pk).status == "pending"
