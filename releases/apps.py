from __future__ import annotations

from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the tasks with Celery in every process (web, commands, workers), so that
        # releases.dispatch can start them by name. Connect the receivers that make sign-ins, sign-outs
        # and every change of who may do what into audit events.
        from releases import (
            signals,
            tasks,  # noqa: F401
        )

        signals.connect()
