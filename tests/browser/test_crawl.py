"""Every page of a populated project in Chromium, as an owner and as a reviewer, and the error
states of its forms: each answer carries the Content-Security-Policy (a fresh nonce, no
'unsafe-inline' / 'unsafe-eval' for scripts), and the browser reports zero CSP violations and zero
console errors. Screenshots of each page at 1,280 and 390 px (and 768 px for review pages) go to
var/screenshots/ for a person to look at.

The page list is built from the URL conf: a new page fails this test until it is listed here
(with the objects it shows) or in NOT_PAGES (with the reason it is not a page).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tests.browser.populated import build
from tests.conftest import login

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
WIDE, TABLET, PHONE = 1280, 768, 390
OUTSIDE = ("admin/", "api/", "static/")

# URL name -> the keyword arguments of the page in the populated project.
PAGES: dict[str, Callable] = {
    "projects:list": lambda w: {},
    "projects:create": lambda w: {},
    "projects:overview": lambda w: {"pk": w.project.pk},
    "projects:problem": lambda w: {"pk": w.project.pk},
    "projects:members": lambda w: {"pk": w.project.pk},
    "projects:audit": lambda w: {"pk": w.project.pk},
    "projects:webhook": lambda w: {"pk": w.project.pk},
    "projects:jobs": lambda w: {"pk": w.project.pk},
    "jobs:detail": lambda w: {"pk": w["job"].pk},
    "accounts:tokens": lambda w: {},
    "datasets:list": lambda w: {"pk": w.project.pk},
    "datasets:detail": lambda w: {"dataset_id": w["dataset"].pk},
    "datasets:version": lambda w: {"version_id": w["version"].pk},
    "experiments:list": lambda w: {"pk": w.project.pk},
    "experiments:create": lambda w: {"pk": w.project.pk},
    "experiments:detail": lambda w: {"experiment_id": w["experiment"].pk},
    "experiments:run": lambda w: {"run_id": w["best"].pk},
    "experiments:compare": lambda w: {"experiment_id": w["experiment"].pk},
    "deployments:registry": lambda w: {"pk": w.project.pk},
    "deployments:model_version": lambda w: {"pk": w["model_version"].pk},
    "deployments:list": lambda w: {"pk": w.project.pk},
    "deployments:detail": lambda w: {"pk": w["deployment"].pk},
    "deployments:monitoring": lambda w: {"pk": w.project.pk, "deployment_id": w["deployment"].pk},
    "deployments:reviews": lambda w: {"pk": w.project.pk},
    "deployments:review-item": lambda w: {"pk": w.project.pk, "item_id": w["review"].pk},
    "deployments:review-health": lambda w: {"pk": w.project.pk, "deployment_id": w["deployment"].pk},
}
QUERIES = {"experiments:compare": "?runs={best}&runs={baseline}"}
REVIEW_PAGES = {"deployments:reviews", "deployments:review-item", "deployments:review-health"}
NOT_PAGES = {
    "login": "visited logged out below",
    "logout": "POST only",
    "healthz": "JSON for load balancers",
    "favicon": "an icon, fetched below",
    "projects:decision": "POST only",
    "projects:delete": "POST only",
    "projects:member": "POST only",
    "jobs:cancel": "POST only",
    "jobs:webhook_test": "POST only (tests/security/test_secrets.py)",
    "accounts:token-revoke": "POST only",
    "datasets:recipe-auto": "JSON for the recipe editor (tests/datasets/test_recipe_ui.py)",
    "datasets:recipe-preview": "POST, JSON for the recipe editor",
    "experiments:cancel": "POST only",
    "experiments:tune": "POST only",
    "experiments:evaluate": "POST only; its error state is below",
    "experiments:diagnose": "POST only",
    "deployments:model_download": "a file download",
    "deployments:model_version_decide": "POST only; its error state is below",
    "deployments:model_version_deploy": "POST only; its error state is below",
    "deployments:run_register": "POST only (tests/browser/test_guided_loop.py)",
    "deployments:rollback": "POST only",
    "deployments:promote": "POST only",
    "deployments:status": "POST only",
    "deployments:threshold": "POST only (tests/deployments/test_rollout_browser.py)",
    "deployments:costs-apply": "POST only (tests/deployments/test_costs_browser.py)",
    "deployments:retention": "POST only (tests/deployments/test_prediction_retention.py)",
    "deployments:retire": "POST only (tests/deployments/test_rollout_browser.py)",
    "deployments:key_create": "POST only",
    "deployments:key_revoke": "POST only",
    "deployments:try": "POST only; its error state is below",
    "deployments:batch": "POST only",
    "deployments:batch_download": "a file download",
    "deployments:review-bulk": "POST only",
    "deployments:monitoring-snapshot": "POST only",
    "deployments:monitoring-retrain": "POST only",
    "deployments:monitoring-promote": "POST only",
    "deployments:monitoring-settings": "POST only",
    "deployments:monitoring-acknowledge": "POST only",
}

# Collects CSP violations from the first script that runs on each page.
# The elements sticking out of the window that no scrolling box clips (why a page is too wide).
OFFENDERS = """(() => {
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.right <= innerWidth + 2 || !r.width) continue;
    let p = el.parentElement, clipped = false;
    for (; p && p !== document.body; p = p.parentElement) if (getComputedStyle(p).overflowX !== "visible") { clipped = true; break; }
    if (!clipped) out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + (el.getAttribute("class") || "").split(" ")[0]);
  }
  return out.slice(0, 4);
})()"""

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def ui_url_names() -> dict[str, str]:
    """Every named URL of the UI (not the admin, the API or static files): name -> route."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if route.startswith(OUTSIDE):
                continue
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, route, ns)
            elif isinstance(p, URLPattern) and p.name:
                found[namespace + p.name] = route

    walk(get_resolver().url_patterns, "", "")
    return found


def test_every_ui_url_is_crawled_or_explained():
    names = set(ui_url_names())
    missing = names - set(PAGES) - set(NOT_PAGES)
    assert not missing, f"new pages missing from the crawl (add them to PAGES or NOT_PAGES): {sorted(missing)}"
    stale = (set(PAGES) | set(NOT_PAGES)) - names
    assert not stale, f"listed but gone from the URL conf: {sorted(stale)}"


class Crawler:
    def __init__(self, browser, base_url: str, role: str):
        self.context = browser.new_context(base_url=base_url, viewport={"width": WIDE, "height": 900})
        self.context.add_init_script(WATCH)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20000)
        self.role = role
        self.problems: list[str] = []
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console.append(f"uncaught: {e}"))

    def visit(self, url: str, label: str, widths=(WIDE,), shots: bool = True, expect_status: int | None = None):
        for width in widths:
            self.page.set_viewport_size({"width": width, "height": 900 if width > PHONE else 844})
            self.console.clear()
            response = self.page.goto(url, wait_until="load")
            self.settle()
            self.check(label, response, expect_status)
            if shots:
                self.shoot(f"{label}-{width}")

    def settle(self) -> None:
        try:
            self.page.wait_for_load_state("networkidle", timeout=4000)
        except Exception:  # noqa: S110 - pages that poll a job never go idle; what they show is loaded
            pass
        self.page.wait_for_timeout(150)

    def check(self, label: str, response=None, expect_status: int | None = None) -> None:
        where = f"{self.role} {label} ({self.page.url})"
        if response is not None:
            csp = response.headers.get("content-security-policy", "")
            script = next((d for d in csp.split(";") if d.strip().startswith("script-src")), "")
            if "'nonce-" not in script or "unsafe-inline" in script or "unsafe-eval" in script:
                self.problems.append(f"{where}: weak or missing CSP {csp!r}")
            if "unsafe-inline" in csp:
                self.problems.append(f"{where}: 'unsafe-inline' in the policy")
            if expect_status is not None and response.status != expect_status:
                self.problems.append(f"{where}: HTTP {response.status}, expected {expect_status}")
            elif expect_status is None and response.status >= 400:
                self.problems.append(f"{where}: HTTP {response.status}")
        violations = self.page.evaluate("window.__csp || []")
        for v in violations:
            self.problems.append(f"{where}: CSP violation {v}")
        for text in self.console:
            if expect_status and f"status of {expect_status}" in text:
                continue  # the browser logs the expected 403 of the page itself
            self.problems.append(f"{where}: console error {text}")
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 2:
            offenders = ", ".join(self.page.evaluate(OFFENDERS))
            self.problems.append(f"{where}: the page is {overflow}px wider than the window ({offenders})")

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.role}-{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


def _url(name: str, world) -> str:
    from django.urls import reverse

    url = reverse(name, kwargs=PAGES[name](world))
    query = QUERIES.get(name, "")
    return url + query.format(best=world["best"].pk, baseline=world["baseline"].pk)


def _error_states(c: Crawler, world) -> None:
    """Forms submitted with bad input: the error shows next to the control, still no violation."""
    p = c.page
    project = world.project.pk
    # Problem statement: a negative threshold, refused under its field.
    c.visit(f"/projects/{project}/problem/", "error-problem", shots=False)
    p.fill("#id_success_threshold", "-1")
    p.click("#problem-form button[type=submit]")
    p.wait_for_selector("#field-success_threshold .errorlist li")
    c.settle()
    c.check("error-problem")
    c.shoot(f"error-problem-{WIDE}")
    # Members: an unknown user, under the username field.
    c.visit(f"/projects/{project}/members/", "error-members", shots=False)
    p.fill("#id_username", "nobody-here")
    p.click("#add-member button[type=submit]")
    p.wait_for_selector("#add-member .errorlist li")
    c.settle()
    c.check("error-members")
    # The final evaluation's error state (a baseline without confirmation) needs an experiment whose
    # test set is unused: tests/browser/test_guided_ui.py submits it under the same CSP checks.
    # The go / no-go decision on a model version's page, without its rationale.
    c.visit(f"/models/{world['model_version'].pk}/", "error-decide", shots=False)
    p.click("#decide-change summary")
    p.select_option("#decide-decision", "no_go")
    p.click("#decide-button")
    p.wait_for_selector("#decide-rationale[aria-invalid=true]")
    c.settle()
    c.console[:] = [t for t in c.console if "status of 400" not in t]  # the refused form's own answer
    c.check("error-decide")
    c.shoot(f"error-decide-{WIDE}")
    # Try it with a body that is not JSON.
    c.visit(f"/deployments/{world['deployment'].pk}/", "error-try", shots=False)
    p.fill("#try-body", "{not json")
    p.click("#try-send")
    p.wait_for_selector("#try-error, .form-feedback li, #messages li.error")
    c.settle()
    c.check("error-try")
    c.shoot(f"error-try-{WIDE}")


@pytest.mark.timeout(900)  # every page of a populated project, as owner and reviewer: minutes, not seconds
def test_every_page_under_csp_without_console_errors(browser, live_server, team, worker):
    world = build(team)
    names = ui_url_names()
    report: list[str] = []
    owner = Crawler(browser, live_server.url, "owner")
    try:
        owner.visit("/login/", "login", widths=(WIDE, PHONE))
        login(owner.page, team.owner.username)
        for name in sorted(names):
            if name not in PAGES:
                continue
            widths = (WIDE, TABLET, PHONE) if name in REVIEW_PAGES else (WIDE, PHONE)
            owner.visit(_url(name, world), name.replace(":", "-"), widths=widths)
        owner.visit("/api/v1/docs/", "api-docs", widths=(WIDE,))
        owner.page.wait_for_selector(".swagger-ui .information-container", timeout=20000)
        owner.check("api-docs")
        icon = owner.page.request.get("/favicon.ico")
        if icon.status != 200 or icon.headers.get("content-type") != "image/x-icon":
            owner.problems.append(f"/favicon.ico answered {icon.status} {icon.headers.get('content-type')}")
        _error_states(owner, world)
        report += owner.problems
    finally:
        owner.close()
    reviewer = Crawler(browser, live_server.url, "reviewer")
    try:
        login(reviewer.page, team.reviewer.username)
        for name in sorted(names):
            if name not in PAGES:
                continue
            reviewer_only = name in REVIEW_PAGES
            forbidden = name in ("projects:audit", "projects:webhook", "experiments:create")
            reviewer.visit(
                _url(name, world),
                name.replace(":", "-"),
                widths=(TABLET, PHONE) if reviewer_only else (PHONE,),
                shots=reviewer_only,
                expect_status=403 if forbidden else None,
            )
        report += reviewer.problems
    finally:
        reviewer.close()
    report += _decision_panel_fits(browser, live_server.url, team, world)
    assert not report, "\n".join(report)


def _decision_panel_fits(browser, base_url: str, team, world) -> list[str]:
    """At 390 and 768 px the review item's decision panel is on screen whole and works."""
    problems = []
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        login(page, team.reviewer.username)
        for width in (PHONE, TABLET):
            page.set_viewport_size({"width": width, "height": 844})
            page.goto(f"/projects/{world.project.pk}/reviews/{world['fresh'].pk}/")
            for selector in ("#decision-panel", "#btn-approve", "#btn-override", "#btn-escalate", "#label"):
                box = page.locator(selector).bounding_box()
                if box is None or box["x"] < 0 or box["x"] + box["width"] > width + 1:
                    problems.append(f"{selector} is cut off at {width}px: {box}")
        page.click("#btn-approve")
        page.wait_for_url(re.compile(r"/reviews/"))
        world["fresh"].refresh_from_db()
        if world["fresh"].status != "approved":
            problems.append(f"approving at {TABLET}px left the item {world['fresh'].status}")
    finally:
        context.close()
    return problems
