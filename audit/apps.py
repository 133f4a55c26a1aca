from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the checkpoint task with Celery in every process, so services can start it by name
        # through releases.dispatch after approvals and deployments.
        from audit import tasks  # noqa: F401
