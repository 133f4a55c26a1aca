from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.log import SystemActor
from releases import services
from releases.errors import LineageError
from releases.roles import ALL_ROLES


class Command(BaseCommand):
    help = f"Give USER a role ({', '.join(ALL_ROLES)}); --revoke takes it away. Recorded in the audit log."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("user")
        parser.add_argument("role", help=", ".join(ALL_ROLES))
        parser.add_argument("--revoke", action="store_true", help="remove the role instead")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}", returncode=2)
        # Whoever can run manage.py administers the deployment; the audit event names the command.
        by = SystemActor("manage.py grant")
        try:
            if options["revoke"]:
                changed = services.revoke_role(user, options["role"], by=by)
                verb = "no longer has" if changed else "did not have"
            else:
                changed = services.grant_role(user, options["role"], by=by)
                verb = "now has" if changed else "already had"
        except LineageError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        self.stdout.write(f"{user.get_username()} {verb} the role {options['role']}")
