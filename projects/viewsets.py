"""The base of every API view on project-owned objects.

- `get_queryset` is scoped to the asking user's projects (lists never show foreign rows);
- `get_object` goes through `projects.access.access`: 404 for non-members, 403 for a role
  that does not allow the view action (`action_permissions`, or VIEW for safe methods and
  `write_permission` for the others);
- `project_from_body` resolves a `project` id in a create body the same way, so a foreign key
  to another project's object gives 404 and creates nothing.
"""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets

from projects.access import access, project_for, scope
from projects.models import Project
from projects.roles import Action


class ProjectScopedViewSet(viewsets.GenericViewSet):
    project_field = "project"
    write_permission: Action = Action.EDIT_DATA
    action_permissions: dict[str, Action] = {}

    def base_queryset(self):
        return self.queryset.all()  # type: ignore[union-attr]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.base_queryset().none()
        return scope(self.base_queryset(), self.request.user, project_field=self.project_field).distinct()

    def required_action(self) -> Action:
        if self.action in self.action_permissions:
            return self.action_permissions[self.action]
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return Action.VIEW
        return self.write_permission

    def get_object(self):
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        obj = access(
            self.request.user, self.base_queryset(), lookup, self.required_action(), project_field=self.project_field
        )
        return obj

    def project_from_body(self, project_id: Any, action: Action | None = None) -> Project:
        return project_for(self.request.user, project_id, action or self.required_action())

    def related_in_project(self, queryset, pk: Any, project: Project, field: str) -> Any:
        """A foreign key in a body must point into the same project; otherwise 400 naming it."""
        from mlplatform.errors import InvalidInput

        try:
            return queryset.get(pk=pk, project=project)
        except (queryset.model.DoesNotExist, ValueError, TypeError):
            raise InvalidInput(f"No such object in this project: {pk!r}.", field=field) from None
