"""Apply queued write-backs to MLflow: move an alias, set a release tag."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import log
from audit.log import SystemActor
from releases.models import WriteBack
from releases.sync.mlflow import call, client_for
from releases.sync.state import SourceUnavailable


def apply(write_back: WriteBack) -> None:
    """Send one write-back; on failure record why (it stays outstanding) and raise SourceUnavailable."""
    server = write_back.server
    actor = SystemActor(f"mlflow-write-back:{server.name}")
    try:
        # The server's credential is read here, so a missing one is recorded on the write-back like any failure.
        client = client_for(server)
        if write_back.kind == WriteBack.Kind.SET_ALIAS:
            call(
                server,
                lambda: client.set_registered_model_alias(
                    write_back.model_name, write_back.key, str(write_back.version)
                ),
            )
        else:
            call(
                server,
                lambda: client.set_model_version_tag(
                    write_back.model_name, str(write_back.version), write_back.key, write_back.value
                ),
            )
    except SourceUnavailable as exc:
        with transaction.atomic():
            WriteBack.objects.filter(pk=write_back.pk).update(
                status=WriteBack.Status.FAILED, attempts=F("attempts") + 1, last_error=str(exc)[:2000]
            )
            write_back.refresh_from_db()
            if write_back.attempts == 1:
                log.record(
                    "mlflow.write_back_failed",
                    actor=actor,
                    subject=server,
                    new={"change": str(write_back)},
                    reason=str(exc),
                )
        raise
    with transaction.atomic():
        WriteBack.objects.filter(pk=write_back.pk).update(
            status=WriteBack.Status.DONE, attempts=F("attempts") + 1, last_error="", applied_at=timezone.now()
        )
        log.record(
            "mlflow.write_back_applied",
            actor=actor,
            subject=server,
            new={"change": str(write_back)},
        )
    write_back.refresh_from_db()
