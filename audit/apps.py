from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from audit import dbroles


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # After a migrate run by the tables' owner, the application's role gets exactly its privileges.
        post_migrate.connect(dbroles.grant_after_migrate, sender=self, dispatch_uid="audit.grant_app_role")
        # Register the checkpoint task with Celery in every process, so services can start it by name
        # through releases.dispatch after approvals and deployments.
        from audit import tasks  # noqa: F401
