from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from releases import services
from releases.management.base import ServiceCommand, whole_number_argument


class Command(ServiceCommand):
    help = "Register an immutable dataset version (hashing a local file, or with a given uri and hash)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Our --version is the dataset version (a team habit), not Django's version flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("name")
        parser.add_argument("--version", type=whole_number_argument(), required=True)
        parser.add_argument(
            "--path", help="local file to hash; its absolute path becomes the uri unless --uri is given"
        )
        parser.add_argument("--uri")
        parser.add_argument("--hash", dest="content_hash", metavar="sha256:HEX")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        uri, content_hash, size = options["uri"], options["content_hash"], None
        if options["path"]:
            if content_hash:
                raise self.fail("give either --path (to hash a file) or --hash, not both")
            path = Path(options["path"])
            if not path.is_file():
                raise self.fail(f"{path} is not a readable file")
            content_hash, size = services.hash_file(path)
            uri = uri or path.resolve().as_uri()
        elif not (uri and content_hash):
            raise self.fail("give --path FILE, or both --uri URI and --hash sha256:HEX")
        version, created = services.register_dataset_version(
            name=options["name"], version=options["version"], uri=uri, content_hash=content_hash, size_bytes=size, by=by
        )
        state = "registered" if created else "already registered with the same content"
        self.stdout.write(f"{version.key} {state} ({version.content_hash})")
