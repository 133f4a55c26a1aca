from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.log import verify_chain


class Command(BaseCommand):
    help = "Re-walk the audit log; exit 1 naming the first broken sequence number."

    def handle(self, *args: Any, **options: Any) -> None:
        result = verify_chain()
        if result.ok:
            self.stdout.write(f"audit log intact: {result.count} events verified")
            return
        self.stderr.write(f"audit log broken at #{result.broken_seq}: {result.problem}")
        raise SystemExit(1)
