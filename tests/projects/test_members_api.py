from __future__ import annotations

import pytest

from projects.models import AuditEvent, Membership
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def members_url(team, user_id=None):
    base = f"/api/v1/projects/{team.project.pk}/members/"
    return f"{base}{user_id}/" if user_id else base


def test_owner_invites_reviewer(api, team):
    UserFactory(username="newbie")
    response = api("owner").post(members_url(team), {"username": "newbie", "role": "reviewer"}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["role"] == "reviewer"
    assert Membership.objects.get(project=team.project, user__username="newbie").role == "reviewer"
    assert AuditEvent.objects.filter(project=team.project, action="member.added").exists()


def test_members_listed_for_viewer(api, team):
    response = api("viewer").get(members_url(team))
    assert response.status_code == 200
    assert {m["username"] for m in response.data} == {"olivia", "eddie", "rita", "victor"}


@pytest.mark.parametrize("role", ["editor", "reviewer", "viewer"])
def test_only_owner_manages_members(api, team, role):
    UserFactory(username="newbie")
    client = api(role)
    assert client.post(members_url(team), {"username": "newbie", "role": "viewer"}, format="json").status_code == 403
    assert client.patch(members_url(team, team.viewer.pk), {"role": "owner"}, format="json").status_code == 403
    assert client.delete(members_url(team, team.viewer.pk)).status_code == 403
    assert Membership.objects.get(project=team.project, user=team.viewer).role == "viewer"


def test_outsider_cannot_manage_members(api, team):
    client = api("outsider")
    assert client.post(members_url(team), {"username": "oscar", "role": "owner"}, format="json").status_code == 404
    assert client.delete(members_url(team, team.viewer.pk)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "eddie", "role": "superuser"}, "role"),
        ({"username": "ghost", "role": "viewer"}, "username"),
        ({"role": "viewer"}, "username"),
    ],
)
def test_add_member_rejects_bad_input(api, team, body, field):
    count = Membership.objects.count()
    response = api("owner").post(members_url(team), body, format="json")
    assert response.status_code == 400
    assert field in response.data["errors"]
    assert Membership.objects.count() == count


def test_adding_existing_member_is_conflict(api, team):
    response = api("owner").post(members_url(team), {"username": "eddie", "role": "viewer"}, format="json")
    assert response.status_code == 409


def test_change_role(api, team):
    response = api("owner").patch(members_url(team, team.viewer.pk), {"role": "editor"}, format="json")
    assert response.status_code == 200
    assert Membership.objects.get(project=team.project, user=team.viewer).role == "editor"


def test_last_owner_cannot_leave_or_demote_themself(api, team):
    client = api("owner")
    response = client.delete(members_url(team, team.owner.pk))
    assert response.status_code == 400
    assert "user" in response.data["errors"]
    response = client.patch(members_url(team, team.owner.pk), {"role": "viewer"}, format="json")
    assert response.status_code == 400
    assert "role" in response.data["errors"]
    assert Membership.objects.get(project=team.project, user=team.owner).role == "owner"


def test_removed_member_loses_access_on_next_request(api, team):
    client = api("editor")
    assert client.get(f"/api/v1/projects/{team.project.pk}/").status_code == 200
    assert api("owner").delete(members_url(team, team.editor.pk)).status_code == 204
    assert client.get(f"/api/v1/projects/{team.project.pk}/").status_code == 404


def test_audit_log_is_owner_only(api, team):
    api("owner").patch(f"/api/v1/projects/{team.project.pk}/", {"objective": "x"}, format="json")
    assert api("editor").get(f"/api/v1/projects/{team.project.pk}/audit/").status_code == 403
    response = api("owner").get(f"/api/v1/projects/{team.project.pk}/audit/")
    assert response.status_code == 200
    assert response.data["results"][0]["action"] == "project.updated"
    assert response.data["results"][0]["actor"] == "olivia"
    assert AuditEvent.objects.filter(project=team.project).count() >= 1
