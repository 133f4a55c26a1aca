"""The demo's people (one login per persona) and the CI account that cuts releases."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from releases.demo.story import PEOPLE
from releases.roles import RELEASE_MANAGERS


def people(password: str) -> dict[str, User]:
    """Every persona of the story by username, with ``password``, plus ``ci`` (no password: it uses the API)."""
    users = {}
    for username, first, last, roles, superuser in PEOPLE:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"}
        )
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in roles))
        users[username] = user
    ci, _ = User.objects.get_or_create(username="ci", defaults={"first_name": "CI", "last_name": "pipeline"})
    ci.set_unusable_password()
    ci.save()
    ci.groups.add(Group.objects.get_or_create(name=RELEASE_MANAGERS)[0])
    users["ci"] = ci
    return users
