from __future__ import annotations

import functools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from projects.models import Membership, Project

PASSWORD = "correct-horse-battery-9"


@functools.cache
def password_hash() -> str:
    # Hashing once per run: PBKDF2 is slow on purpose, and every test creates five users.
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.LazyFunction(password_hash)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    task_type = "classification"
    objective = "Decide loan applications faster without more defaults."
    success_metric = "f1"
    success_threshold = 0.7
    baseline_score = 0.6


def add_member(project: Project, user, role: str) -> Membership:
    return Membership.objects.create(project=project, user=user, role=role)
