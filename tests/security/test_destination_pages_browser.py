"""The pages whose webhook fields became owner-only (monitoring settings, review policy) and the
deployment page with its curl example, in Chromium as an owner and an editor: no CSP violation,
no console error, no overflow (the crawl's checks), and the fields only where they belong."""

from __future__ import annotations

import pytest

from tests.browser.test_crawl import PHONE, WIDE, Crawler
from tests.conftest import login
from tests.security.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_and_editor_pages_under_csp(browser, live_server, team):
    world = build_world(team.project, team.owner)
    deployment = world["deployment"]
    pages = {
        "monitoring": (
            f"/projects/{team.project.pk}/deployments/{deployment.pk}/monitoring/",
            'input[name="alert_webhook_url"]',
        ),
        "review-health": (
            f"/projects/{team.project.pk}/reviews/health/{deployment.pk}/",
            'input[name="review_webhook_url"]',
        ),
        "deployment": (f"/deployments/{deployment.pk}/", "#curl-example"),
    }
    problems: list[str] = []
    for role, user in (("owner", team.owner), ("editor", team.editor)):
        crawler = Crawler(browser, live_server.url, role)
        try:
            login(crawler.page, user.username)
            for label, (url, selector) in pages.items():
                crawler.visit(url, f"destinations-{label}", widths=(WIDE, PHONE), shots=False)
                shown = crawler.page.locator(selector).count()
                expected = 1 if role == "owner" or label == "deployment" else 0
                if shown != expected:
                    problems.append(f"{role} {label}: {selector} shown {shown} times, expected {expected}")
            problems += crawler.problems
        finally:
            crawler.close()
    assert not problems, "\n".join(problems)
