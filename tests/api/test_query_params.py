"""Every list refuses what it does not understand, with a 400 that lists what it does."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_unknown_filter_is_a_400_listing_the_valid_filters(api, team):
    r = api("viewer").get("/api/v1/datasets/", {"projekt": team.project.pk})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid"
    assert "projekt" in body["errors"]
    message = body["errors"]["projekt"][0]
    assert "project" in message and "page_size" in message and "ordering" in message
    assert api("viewer").get("/api/v1/datasets/", {"project": team.project.pk}).status_code == 200


def test_unknown_ordering_lists_the_valid_orderings_and_sort_is_an_alias(api, team):
    r = api("viewer").get("/api/v1/jobs/", {"ordering": "-nope"})
    assert r.status_code == 400
    assert r.json()["errors"]["ordering"] == [
        "Unknown ordering 'nope': order by created_at, status or kind (prefix - for descending, comma-separate several)."
    ]
    assert api("viewer").get("/api/v1/jobs/", {"sort": "-created_at"}).status_code == 200
    assert api("viewer").get("/api/v1/jobs/", {"sort": "bogus"}).json()["errors"]["sort"]


def test_pagination_format_and_documented_parameters_are_accepted(api, team):
    viewer = api("viewer")
    assert viewer.get("/api/v1/projects/", {"page": 1, "page_size": 5, "format": "json"}).status_code == 200
    # the review queue documents ?order= and ?unclaimed= in its schema: both accepted
    r = viewer.get("/api/v1/reviews/", {"project": team.project.pk, "order": "newest", "unclaimed": "1"})
    assert r.status_code == 200, r.json()
    assert viewer.get("/api/v1/reviews/", {"orderr": "newest"}).status_code == 400


def test_a_paged_action_refuses_unknown_parameters_too(api, team):
    owner = api("owner")
    assert owner.get(f"/api/v1/projects/{team.project.pk}/audit/", {"page_size": 10}).status_code == 200
    r = owner.get(f"/api/v1/projects/{team.project.pk}/audit/", {"action": "x"})
    assert r.status_code == 400 and "action" in r.json()["errors"]


def test_version_endpoint_matches_the_schema(client):
    from mlplatform.version import API_VERSION

    assert client.get("/api/v1/version/").json()["api_version"] == API_VERSION
