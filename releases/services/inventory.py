"""Writes for the model inventory: the owner and purpose ML leads keep for each registered model."""

from __future__ import annotations

from django.db import transaction

from audit import log
from audit.log import Actor
from releases.errors import InvalidInput
from releases.models import RegisteredModel
from releases.roles import ML_LEADS, require_role
from releases.services import refusals

OWNER_MAX = RegisteredModel._meta.get_field("owner").max_length or 200
PURPOSE_MAX = 2000


def describe_model(model: RegisteredModel, *, owner: str, purpose: str, by: Actor) -> RegisteredModel:
    """Set a registered model's owner and purpose (ML leads only), audited with the old and new values."""
    with refusals.recorded("model.description_refused", by=by, subject=model):
        require_role(by, ML_LEADS, to="describe a model in the inventory")
        owner, purpose = owner.strip(), purpose.strip()
        if not owner or not purpose:
            raise InvalidInput("the inventory needs both the model's owner and its purpose")
        if len(owner) > OWNER_MAX or len(purpose) > PURPOSE_MAX:
            raise InvalidInput(f"keep the owner under {OWNER_MAX} characters and the purpose under {PURPOSE_MAX}")
        if "\x00" in owner + purpose:
            raise InvalidInput("the owner and purpose must be plain text")
        with transaction.atomic():
            locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
            old = {"owner": locked.owner, "purpose": locked.purpose}
            new = {"owner": owner, "purpose": purpose}
            if old == new:
                return locked
            locked.owner, locked.purpose = owner, purpose
            locked.save(update_fields=["owner", "purpose"])
            log.record("model.described", actor=by, subject=locked, old=old, new=new)
    model.refresh_from_db()
    return model
