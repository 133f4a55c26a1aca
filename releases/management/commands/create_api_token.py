from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from audit.log import SystemActor
from releases import services
from releases.errors import LineageError
from releases.models import ApiToken


class Command(BaseCommand):
    help = "Issue a scoped API token acting as USER. The token is printed once; only its hash is stored."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("user", help="the service account the token acts as (its roles still apply)")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            dest="scopes",
            help=f"repeat or comma-separate: {', '.join(ApiToken.Scope.values)}",
        )
        parser.add_argument("--name", default="", help="what uses the token (default: USER)")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=None,
            metavar="DAYS",
            help="how long the token is valid (default: LINEAGE_API_TOKEN_DAYS, 90 unless configured)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}", returncode=2)
        scopes = [s.strip() for value in options["scopes"] for s in value.split(",") if s.strip()]
        try:
            token, raw = services.create_api_token(
                user,
                name=options["name"] or user.get_username(),
                scopes=scopes,
                by=SystemActor("manage.py create_api_token"),
                expires_in_days=options["expires_in_days"],
            )
        except LineageError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        self.stderr.write(
            f"token {token.hint}… for {user.get_username()} ({', '.join(token.scopes)}), "
            f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC; shown only once:"
        )
        self.stdout.write(raw)
