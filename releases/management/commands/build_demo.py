from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from lineage_site.env import env_str
from releases import demo

DEFAULT_PASSWORD = "lineage-demo"  # noqa: S105 - demo only, printed to the person running it


class Command(BaseCommand):
    help = "Build the demo world of the product story (idempotent) and print the logins."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--root", default=str(settings.VAR_DIR / "demo"), help="where the git repo and data files go"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = env_str("DEMO_PASSWORD", DEFAULT_PASSWORD)
        demo.build(password=password, root=Path(options["root"]), say=self.stdout.write)
        self.stdout.write("")
        self.stdout.write("Log in at http://127.0.0.1:8000/ as any of:")
        for username, first, last, roles, _ in demo.PEOPLE:
            self.stdout.write(f"  {username:<8} {first} {last:<8} ({', '.join(roles)})")
        shown = password if password == DEFAULT_PASSWORD else "(the value of DEMO_PASSWORD)"
        self.stdout.write(f"Password for all: {shown}")
