"""Stored XSS: a dataset whose column names and cells are script payloads, and predictions and
reviews whose inputs carry them, shown in every page that displays them, in a real browser:
nothing executes."""

from __future__ import annotations

import pandas as pd
import pytest
from django.utils import timezone

from datasets.services import dataset_create, version_create_from_frame, version_split
from deployments.models import Prediction, ReviewItem, uuid7
from tests.conftest import login, wait_for_job
from tests.security.world import build_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>window.__xss=(window.__xss||0)+1</script>"
IMG = '"><img src=x onerror="window.__xss=(window.__xss||0)+1">'
SVG = "<svg/onload=window.__xss=1>"


def _evil_frame(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame(
        {
            SCRIPT: [SCRIPT, IMG, SVG] * (n // 3),
            IMG: list(range(n)),
            "label": ["a", "b", "c"] * (n // 3),
            "note": [f"{IMG} row {i}" for i in range(n)],
        }
    )


def _assert_clean(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__xss") is None, f"script executed on {url}"
    assert page.locator("img[src=x]").count() == 0, f"an injected <img> was parsed as HTML on {url}"


def test_payloads_never_execute(page, team, worker):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    world = build_world(team.project, team.owner)
    dataset = dataset_create(project=team.project, name=f"evil {SCRIPT}", created_by=team.owner, description=IMG)
    version = version_create_from_frame(dataset=dataset, frame=_evil_frame(), created_by=team.owner)
    from jobs.models import Job

    for job in Job.objects.filter(target_type="datasetversion", target_id=version.pk):
        wait_for_job(job.pk, timeout=120)
    version.refresh_from_db()
    version = version_split(version=version, actor=team.owner, strategy="random")
    deployment = world["deployment"]
    p = Prediction.objects.create(
        id=uuid7(),
        project=team.project,
        deployment=deployment,
        model_version=world["model_version"],
        inputs={"income": 1.0, "debt": 2.0, "region": IMG},
        prediction=SCRIPT,
        confidence=0.5,
        probabilities={"approve": 0.5, "reject": 0.5},
        created_at=timezone.now(),
    )
    item = ReviewItem.objects.create(
        project=team.project,
        deployment=deployment,
        prediction=p,
        reason="low_confidence",
        mode="flag",
        confidence=0.5,
        model_label=SCRIPT,
        comment=IMG,
    )
    team.project.objective = SCRIPT
    team.project.assumptions = [{"text": IMG, "status": "unchecked", "note": SCRIPT}]
    team.project.save()

    login(page, "olivia")
    pid = team.project.pk
    for url in [
        "/",
        f"/projects/{pid}/",
        f"/projects/{pid}/problem/",
        f"/projects/{pid}/audit/",
        f"/projects/{pid}/datasets/",
        f"/datasets/{dataset.pk}/",
        f"/dataset-versions/{version.pk}/",
        f"/projects/{pid}/experiments/",
        f"/projects/{pid}/models/",
        f"/projects/{pid}/deployments/",
        f"/deployments/{deployment.pk}/",
        f"/projects/{pid}/reviews/",
        f"/projects/{pid}/reviews/{item.pk}/",
        f"/projects/{pid}/deployments/{deployment.pk}/monitoring/",
        f"/projects/{pid}/jobs/",
    ]:
        _assert_clean(page, url)
    assert not dialogs
    # the payloads are shown, as text
    page.goto(f"/dataset-versions/{version.pk}/")
    assert (
        SCRIPT in page.content().replace("&lt;", "<").replace("&gt;", ">") or page.get_by_text("window.__xss").count()
    )
