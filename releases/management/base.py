"""Shared plumbing for the CLI: resolve the acting user, turn refusals into exit code 2 with one line."""

from __future__ import annotations

from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from releases.errors import LineageError
from releases.models import DatasetVersion
from releases.models.base import MAX_VERSION
from releases.numbers import whole_number


def whole_number_argument(*, least: int = 1, most: int = MAX_VERSION) -> Callable[[str], int]:
    """An argparse ``type`` for a number typed on the command line: a bad one exits 2 with one line saying
    what is expected (``type=int`` would take "٣" and "1_0", and let 2**31 through to the database)."""

    def parse(text: str) -> int:
        number = whole_number(text, most=most)
        if number is None or number < least:
            raise ArgumentTypeError(f"expected a whole number from {least} to {most}, not {text!r}")
        return number

    return parse


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
