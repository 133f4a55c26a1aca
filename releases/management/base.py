"""Shared plumbing for the CLI: resolve the acting user, turn refusals into exit code 2 with one line."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from releases.errors import LineageError
from releases.models import DatasetVersion


class ServiceCommand(BaseCommand):
    """A command that calls one service as a named user; refusals exit 2 with the service's message."""

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who is acting (audited)")

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except LineageError as exc:
            raise CommandError(exc.message, returncode=2) from exc

    def acting_user(self, username: str) -> User:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}", returncode=2)
        return user

    def dataset_version(self, key: str) -> DatasetVersion:
        """The dataset version a person typed as NAME:VERSION, or exit 2 saying what was expected."""
        version = DatasetVersion.objects.by_key(key).select_related("dataset").first()
        if version is None:
            raise self.fail(f"no dataset version {key!r} (expected NAME:VERSION, e.g. churn-train:18)")
        return version

    def fail(self, message: str) -> CommandError:
        return CommandError(message, returncode=2)
