from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from audit.log import SystemActor
from releases import services
from releases.management.base import ServiceCommand, whole_number_argument


class Command(ServiceCommand):
    help = "Add a Git repository to sync from (a clone URL or a local path)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("url")
        parser.add_argument("--commit-url-template", default="", help="e.g. https://git.example.com/x/commit/{sha}")
        parser.add_argument("--interval", type=whole_number_argument(), help="seconds between periodic syncs")

    def handle(self, *args: Any, **options: Any) -> None:
        state = services.add_git_repository(
            name=options["name"],
            url=options["url"],
            commit_url_template=options["commit_url_template"],
            interval_seconds=options["interval"],
            by=SystemActor("cli"),
        )
        self.stdout.write(
            f"git repository {state.source_name} at {state.source_location}; "
            f"sync it with: manage.py sync --source {state.source_name}"
        )
