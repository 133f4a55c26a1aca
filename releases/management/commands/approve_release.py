from __future__ import annotations

import getpass
import sys
from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Release


class Command(ServiceCommand):
    help = "Sign an approval of a release (four-eyes; the password is your electronic signature)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("name")
        parser.add_argument("--meaning", default="Approved for production")
        parser.add_argument("--comment", default="")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        release = Release.objects.filter(name=options["name"]).first()
        if release is None:
            raise self.fail(f"no release named {options['name']!r}")
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"Password for {by.get_username()} (signs the approval): ")
        approval = services.approve_release(
            release, by=by, password=password, meaning=options["meaning"], comment=options["comment"]
        )
        release.refresh_from_db()
        self.stdout.write(
            f"{release.name} signed by {approval.approver_name} ({approval.meaning}); now {release.state}"
        )
