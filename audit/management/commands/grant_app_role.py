from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from audit import dbroles


class Command(BaseCommand):
    help = (
        "Give the application's PostgreSQL role exactly its privileges (SELECT and INSERT on the evidence, "
        "no DELETE on the chain, never TRUNCATE). Run as the tables' owner; migrate --database owner does it too. "
        "With --check, only report what would still let the role change history."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("role", nargs="?", help="the application's role (default: the user of DATABASE_URL)")
        parser.add_argument(
            "--database",
            default=None,
            help="connection to use (default: 'owner' when DATABASE_MIGRATE_URL is set, else 'default')",
        )
        parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each problem")

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"] or settings.LINEAGE_DB_APP_ROLE or settings.DATABASES[DEFAULT_DB_ALIAS].get("USER")
        alias = options["database"] or ("owner" if "owner" in settings.DATABASES else DEFAULT_DB_ALIAS)
        if alias not in settings.DATABASES:
            raise CommandError(f"no database connection named {alias!r}", returncode=2)
        connection = connections[alias]
        if connection.vendor != "postgresql":
            raise CommandError(
                "database roles apply to PostgreSQL only; SQLite relies on the model-level guards", returncode=2
            )
        if not role:
            raise CommandError("name the application's role (or set DATABASE_URL with a user)", returncode=2)
        if not options["check"]:
            granted = dbroles.apply(connection, role)
            if options["verbosity"] > 1:
                for grant in granted:
                    self.stdout.write(grant.describe())
            self.stdout.write(f"granted {role} its privileges on {len(granted)} tables")
        found = dbroles.problems(connection, role)
        for problem in found:
            self.stderr.write(problem)
        if found:
            raise SystemExit(1)
        self.stdout.write(f"{role} holds only its grants: no ownership, no TRUNCATE, no way to switch triggers off")
