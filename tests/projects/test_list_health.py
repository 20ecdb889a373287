"""The project list shows what needs attention (firing alerts, undecided reviews) in one query;
the audit log reads as text a person understands."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from projects.selectors import audit_rows, project_list
from projects.services import audit_record
from tests.factories import PASSWORD, ProjectFactory, add_member
from tests.security.world import build_world


def _client(user) -> Client:
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def test_each_project_shows_its_firing_alerts_and_pending_reviews(team):
    build_world(team.project, team.owner)  # one firing alert, one pending review item
    quiet = ProjectFactory(created_by=team.owner, name="Quiet project")
    add_member(quiet, team.owner, "owner")
    rows = {r.project.pk: r for r in project_list(user=team.owner)}
    assert (rows[team.project.pk].open_alerts, rows[team.project.pk].pending_reviews) == (1, 1)
    assert (rows[quiet.pk].open_alerts, rows[quiet.pk].pending_reviews) == (0, 0)
    assert rows[team.project.pk].role == "owner" and rows[team.project.pk].goal == "F1 ≥ 0.7"
    html = _client(team.owner).get("/").content.decode()
    assert 'data-alerts="1"' in html and 'data-reviews="1"' in html and "nothing to review" in html


def test_the_list_costs_one_query_however_many_projects(team):
    build_world(team.project, team.owner)
    with CaptureQueriesContext(connection) as one:
        project_list(user=team.owner)
    for i in range(5):
        p = ProjectFactory(created_by=team.owner, name=f"More {i}")
        add_member(p, team.owner, "editor")
    with CaptureQueriesContext(connection) as six:
        rows = project_list(user=team.owner)
    assert len(rows) == 6
    assert len(one.captured_queries) == len(six.captured_queries) == 1


def test_outsiders_do_not_see_counts_of_projects_they_are_not_in(team):
    build_world(team.project, team.owner)
    rows = project_list(user=team.outsider)
    assert [r.project.pk for r in rows] == [team.other_project.pk]
    assert rows[0].open_alerts == 0 and rows[0].pending_reviews == 0


def test_audit_rows_read_as_text(team):
    world = build_world(team.project, team.owner)
    audit_record(
        actor=team.owner,
        action="api_key.created",
        project=team.project,
        obj=world["api_key"],  # never "ApiKey object (n)"
        data={"name": "app", "limits": {"rate": 600, "burst": None}, "scopes": []},
    )
    row = audit_rows(project=team.project)[0]
    key = world["api_key"]
    assert row.target == f"API key #{key.pk} · key “{key.name}” ({key.prefix}…)"
    assert "object (" not in row.target
    assert ("Limits", "(rate: 600, burst: —)") in row.details and ("Scopes", "none") in row.details
    html = _client(team.owner).get(f"/projects/{team.project.pk}/audit/").content.decode()
    assert "object (" not in html and "{&#x27;" not in html and "{'" not in html
