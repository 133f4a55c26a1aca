from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from audit.log import SystemActor
from audit.vocabulary import OUTBOUND_EVENTS
from releases import credentials, services
from releases.management.base import ServiceCommand
from releases.models import WebhookSubscription
from releases.models.outbound import SECRET_PREFIX


class Command(ServiceCommand):
    help = "Add a webhook that receives outbound events, signed with the secret an environment variable holds."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("url", help="where events are POSTed: an http:// or https:// address")
        parser.add_argument(
            "--event",
            action="append",
            dest="events",
            metavar="EVENT",
            help=f"repeat or comma-separate (default: all): {', '.join(OUTBOUND_EVENTS)}",
        )
        parser.add_argument(
            "--format",
            default=WebhookSubscription.Format.JSON,
            help="json (the default: a signed JSON document) or slack (a Slack message)",
        )
        parser.add_argument(
            "--secret-env",
            default="",
            metavar="NAME",
            help=f"the environment variable holding the signing secret, {SECRET_PREFIX}..., or the file NAME_FILE "
            "names; read by the workers when they deliver, never stored (optional for slack)",
        )
        parser.add_argument("--inactive", action="store_true", help="add it switched off")

    def handle(self, *args: Any, **options: Any) -> None:
        events = [e.strip() for value in options["events"] or [] for e in value.split(",") if e.strip()]
        subscription, created = services.add_webhook(
            name=options["name"],
            url=options["url"],
            events=events or tuple(OUTBOUND_EVENTS),
            format=options["format"],
            secret_env=options["secret_env"],
            active=not options["inactive"],
            by=SystemActor("manage.py add_webhook"),
        )
        what = "all events" if len(subscription.events) == len(OUTBOUND_EVENTS) else ", ".join(subscription.events)
        signed = f"signed with {credentials.where(subscription.secret_env)}" if subscription.secret_env else "unsigned"
        self.stdout.write(
            f"webhook {subscription.name} {'added' if created else 'already there'}: {subscription.url}, "
            f"{subscription.format}, {what}; {signed}"
        )
