"""The owner turns on drift-aware routing on the policy form; a reviewer filters the queue by
"Unlike training data" and reads, on the item, which features made the row novel."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, ReviewItem
from tests.conftest import login, screenshots
from tests.reviews.conftest import FEATURES, confident_rows, uncertain_rows

pytestmark = pytest.mark.browser


def test_novelty_routing_from_policy_form_to_item(page, browser, live_server, team, novel):
    deployment = novel.deployment
    deployment.review_policy = {}
    deployment.save()
    login(page, "olivia")
    health = f"/projects/{team.project.pk}/reviews/health/{deployment.pk}/"
    page.goto(health)
    assert "held-out training rows flagged" in page.locator("#novelty-help").inner_text()
    assert page.evaluate("document.querySelector('#p-novelty').max") == "20"  # the browser stops 50 first
    page.evaluate("document.querySelector('#policy-form').noValidate = true")
    page.fill("#p-novelty", "50")  # the server too refuses 50%: no false-alarm rate; nothing saved
    page.click("#policy-form button[type=submit]")
    page.wait_for_selector("#policy-form .form-feedback li.error")
    assert "novelty_rate" in page.locator("#policy-form .form-feedback").inner_text()
    assert "novelty_rate" not in Deployment.objects.get(pk=deployment.pk).review_policy
    page.fill("#p-novelty", "2")
    page.click("#policy-form button[type=submit]")
    page.wait_for_selector("li.success")
    assert Deployment.objects.get(pk=deployment.pk).review_policy["novelty_rate"] == pytest.approx(0.02)
    assert page.input_value("#p-novelty") == "2.0"
    help_text = page.locator("#novelty-help").inner_text()
    assert "At 2.0%:" in help_text and "95% CI" in help_text

    deployment.refresh_from_db()
    novel.deployment = deployment
    odd = confident_rows(novel, 1).iloc[0][FEATURES].to_dict() | {"income": 420_000.0}
    odd_cat = confident_rows(novel, 2).iloc[1][FEATURES].to_dict() | {"employment": "astronaut"}
    _, items = novel.predict([odd, odd_cat, *uncertain_rows(novel, 2).to_dict("records")])
    reasons = sorted(i.reason for i in items)
    assert reasons.count("out_of_distribution") >= 1 and reasons.count("low_confidence") == 2
    page.goto(health)
    assert "Unlike training data" in page.locator('[data-metric="by-reason"]').inner_text()
    screenshots(page, "novelty-policy")

    reviewer_ctx = browser.new_context(base_url=live_server.url)
    page = reviewer_ctx.new_page()
    try:
        login(page, "rita")
        page.goto(f"/projects/{team.project.pk}/reviews/")
        page.select_option("#f-reason", "out_of_distribution")
        page.click("#queue-filters button[type=submit]")
        page.wait_for_url(lambda url: "reason=out_of_distribution" in url)
        ood = list(ReviewItem.objects.filter(deployment=deployment, reason="out_of_distribution").order_by("pk"))
        assert page.locator("tr.queue-row").count() == len(ood)
        first = page.locator(f'[data-novelty="{ood[0].pk}"]').inner_text()
        assert "income 420,000 is above everything seen in training" in first
        screenshots(page, "novelty-queue")
        page.keyboard.press("Enter")
        page.wait_for_selector(f'#review-title[data-id="{ood[0].pk}"]')
        assert "Unlike training data" in page.locator("#review-title").inner_text()
        reason = page.locator('#novelty-reasons li[data-feature="income"]')
        assert "above everything seen in training (max " in reason.inner_text()
        screenshots(page, "novelty-item")
        page.keyboard.press("a")  # decided like any other item
        page.wait_for_url(lambda url: f"/reviews/{ood[0].pk}/" not in url)
        assert ReviewItem.objects.get(pk=ood[0].pk).status == "approved"
    finally:
        reviewer_ctx.close()
