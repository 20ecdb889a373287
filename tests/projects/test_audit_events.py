"""The audit log's vocabulary is an enum: an event type the platform does not declare is refused."""

from __future__ import annotations

import pytest

from projects.events import AuditAction
from projects.models import AuditEvent
from projects.services import audit_record

pytestmark = pytest.mark.django_db


def test_an_undeclared_event_type_is_refused_and_nothing_is_written(team):
    with pytest.raises(ValueError, match=r"Unknown audit event type 'deployment\.launched'"):
        audit_record(actor=team.owner, action="deployment.launched", project=team.project)
    assert not AuditEvent.objects.filter(project=team.project, action="deployment.launched").exists()


def test_a_declared_event_is_stored_as_its_unchanged_string(team):
    event = audit_record(actor=team.owner, action=AuditAction.DEPLOYMENT_ROLLED_BACK, project=team.project)
    assert AuditEvent.objects.get(pk=event.pk).action == "deployment.rolled_back"
    # The strings written before the enum existed are its values: old rows need no migration.
    assert AuditAction("review.overridden") is AuditAction.REVIEW_OVERRIDDEN


def test_every_event_the_code_records_is_declared():
    """Each constructor and call site passes a member: a typo fails at import or here."""
    from deployments import events as deployment_events
    from experiments import events as experiment_events

    constructors = [n for n in dir(deployment_events) + dir(experiment_events) if n.endswith("_event")]
    assert len(constructors) >= 20
    assert len({a.value for a in AuditAction}) == len(AuditAction)  # no two names for one string
