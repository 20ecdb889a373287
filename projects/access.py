"""The one access layer for every project-owned object.

Every selector, API view and UI view goes through these functions:
- a user who is not a member of the object's project gets the same 404 as for an object that
  does not exist (nothing reveals that the object is there);
- a member whose role does not allow the action gets 403.

Every project-owned model has a direct `project` foreign key (denormalised where a row also
hangs off another project-owned row) so that scoping is one join, the same everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from projects.models import Membership, Project
from projects.roles import PERMISSIONS, Action, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

M = TypeVar("M", bound=Model)


def _is_authenticated(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def visible_projects(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    """The projects `user` is a member of, in any role."""
    if not _is_authenticated(user):
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user)


def scope(
    queryset: QuerySet[M], user: AbstractBaseUser | AnonymousUser, *, project_field: str = "project"
) -> QuerySet[M]:
    """Restrict a queryset of project-owned rows to the projects `user` belongs to."""
    if not _is_authenticated(user):
        return queryset.none()
    if queryset.model is Project:
        return queryset.filter(memberships__user=user)
    return queryset.filter(**{f"{project_field}__memberships__user": user})


def role_of(user: AbstractBaseUser | AnonymousUser, project: Project | int) -> Role | None:
    if not _is_authenticated(user):
        return None
    project_id = project.pk if isinstance(project, Project) else project
    cache: dict[int, Role | None] = user.__dict__.setdefault("_project_roles", {})
    if project_id not in cache:
        role = Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()
        cache[project_id] = Role(role) if role else None
    return cache[project_id]


def forget_roles(user: Any) -> None:
    """Drop the per-request role cache (after a membership change in the same request)."""
    user.__dict__.pop("_project_roles", None)


def can(user: AbstractBaseUser | AnonymousUser, project: Project | int, action: Action) -> bool:
    role = role_of(user, project)
    return role is not None and role in PERMISSIONS[action]


def require(user: AbstractBaseUser | AnonymousUser, project: Project | int, action: Action) -> Role:
    """404 for a non-member, 403 for a member whose role does not allow `action`."""
    role = role_of(user, project)
    if role is None:
        raise Http404("Not found.")
    if role not in PERMISSIONS[action]:
        raise PermissionDenied(f"Your role ({role.value}) does not allow this action ({action.value}).")
    return role


def access(
    user: AbstractBaseUser | AnonymousUser,
    queryset: QuerySet[M] | type[M],
    pk: Any,
    action: Action = Action.VIEW,
    *,
    project_field: str = "project",
) -> M:
    """Fetch one project-owned object for `user`, checking `action` on its project."""
    qs = queryset.objects.all() if isinstance(queryset, type) else queryset
    try:
        obj = scope(qs, user, project_field=project_field).distinct().get(pk=pk)
    except (qs.model.DoesNotExist, ValueError, TypeError):
        raise Http404("Not found.") from None
    project_id = obj.pk if isinstance(obj, Project) else getattr(obj, f"{project_field}_id")
    require(user, project_id, action)
    return obj


def project_for(user: AbstractBaseUser | AnonymousUser, project_id: Any, action: Action = Action.VIEW) -> Project:
    return access(user, Project, project_id, action)
