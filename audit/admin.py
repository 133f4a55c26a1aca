from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit import vocabulary
from audit.models import Acknowledgment, AuditEvent, Checkpoint, Cosignature, Verification, VerificationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """The log is append-only: the admin shows it and nothing else."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "at", "actor", "action", "meaning", "object_type", "object_key", "reason"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_key", "actor", "request_id"]
    date_hierarchy = "at"
    ordering = ["-seq"]

    @admin.display(description="what it means")
    def meaning(self, event: AuditEvent) -> str:
        return vocabulary.describe(event.action)


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["size", "issued_at", "origin", "root_hash", "key_id"]
    ordering = ["-size"]


@admin.register(Cosignature)
class CosignatureAdmin(ReadOnlyAdmin):
    list_display = ["checkpoint", "witness_key", "added_at"]
    ordering = ["-checkpoint__size"]


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    list_display = ["size", "verified_at", "incremental"]
    ordering = ["-size", "-pk"]


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ["ran_at", "trigger", "ok", "events", "newest_checkpoint", "pending", "broken_seq", "problem"]
    list_filter = ["ok", "trigger"]
    ordering = ["-ran_at", "-pk"]


@admin.register(Acknowledgment)
class AcknowledgmentAdmin(ReadOnlyAdmin):
    list_display = ["run", "by", "at", "note"]
    ordering = ["-at"]
