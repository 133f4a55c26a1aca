from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from audit.log import SystemActor
from releases import services
from releases.management.base import ServiceCommand, whole_number_argument
from releases.models.credentials import GitCredentials


class Command(ServiceCommand):
    help = (
        "Add a Git repository to sync from (a clone URL or a local path). Its credential is named, never "
        "given: an environment variable or a file the worker reads at each sync. Given again for an existing "
        "repository, credential options replace its credential."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("url")
        parser.add_argument("--commit-url-template", default="", help="e.g. https://git.example.com/x/commit/{sha}")
        parser.add_argument("--interval", type=whole_number_argument(), help="seconds between periodic syncs")
        parser.add_argument("--token-env", metavar="NAME", default="", help="variable holding an HTTPS token")
        parser.add_argument("--token-file", metavar="PATH", default="", help="file holding an HTTPS token")
        parser.add_argument("--ssh-key-file", metavar="PATH", default="", help="SSH private key (mode 600)")
        parser.add_argument(
            "--known-hosts-file", metavar="PATH", default="", help="known_hosts to check the host key with"
        )
        parser.add_argument("--no-credential", action="store_true", help="remove the repository's credential")

    def handle(self, *args: Any, **options: Any) -> None:
        given = GitCredentials(
            token_env=options["token_env"],
            token_file=options["token_file"],
            ssh_key_file=options["ssh_key_file"],
            known_hosts_file=options["known_hosts_file"],
        )
        if options["no_credential"] and given != GitCredentials():
            raise self.fail("--no-credential removes the credential: give it alone, without credential options")
        credentials = given if options["no_credential"] or given != GitCredentials() else None
        state = services.add_git_repository(
            name=options["name"],
            url=options["url"],
            commit_url_template=options["commit_url_template"],
            interval_seconds=options["interval"],
            credentials=credentials,
            by=SystemActor("cli"),
        )
        self.stdout.write(
            f"git repository {state.source_name} at {state.source_location}; "
            f"credential: {state.source_credential or 'none'}; "
            f"sync it with: manage.py sync --source {state.source_name}"
        )
