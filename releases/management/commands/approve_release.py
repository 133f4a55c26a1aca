from __future__ import annotations

import getpass
import sys
from argparse import ArgumentParser
from typing import Any

from releases import lineage, services
from releases.management.base import ServiceCommand
from releases.models import Approval


class Command(ServiceCommand):
    help = (
        "Sign an approval of a release (four-eyes; the password is your electronic signature). "
        "The signature covers the lineage digest you reviewed: pass it with --digest, or confirm the one shown."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("name")
        parser.add_argument(
            "--meaning", required=True, choices=list(Approval.MEANINGS), help="what your signature means"
        )
        parser.add_argument("--comment", default="")
        parser.add_argument("--digest", default="", help="the lineage digest you reviewed (sha256:...)")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        trace = lineage.trace(options["name"])
        digest = options["digest"]
        if not digest:
            if options["password_stdin"]:
                raise self.fail("with --password-stdin, pass the lineage digest you reviewed with --digest")
            self.stdout.write(f"{trace.release.name}: {Approval.MEANINGS[options['meaning']]}")
            self.stdout.write(f"You are signing lineage digest {trace.digest}")
            digest = trace.digest
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"Password for {by.get_username()} (signs the approval): ")
        approval = services.sign_release(
            trace.release,
            by=by,
            decision="approve",
            password=password,
            meaning=options["meaning"],
            comment=options["comment"],
            expected_digest=digest,
        )
        status = lineage.release_status(lineage.trace(trace.release.name))
        self.stdout.write(
            f"{trace.release.name} signed by {approval.approver_name} ({approval.meaning}); now {status.label}"
        )
