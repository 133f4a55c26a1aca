"""Template helpers for what the current person may do: show a button only to those who can press it."""

from __future__ import annotations

from django import template
from django.contrib.auth.models import AnonymousUser, User

from releases import lineage
from releases.approval_forms import SignatureForm
from releases.roles import may_act_as
from releases.services import approval_refusal as service_approval_refusal

register = template.Library()


@register.filter
def has_role(user: User | AnonymousUser, roles: str) -> bool:
    """``{% if user|has_role:"on-call,ml-leads" %}``: true for members of any listed role (and superusers)."""
    return may_act_as(user, *roles.split(","))


@register.simple_tag
def approval_refusal(trace: lineage.Trace, user: User | AnonymousUser) -> str:
    """Why ``user`` cannot sign ``trace``'s release right now (empty when they can)."""
    if not isinstance(user, User):
        return "Sign in to approve."
    refusal = service_approval_refusal(trace, user)
    return refusal[1] if refusal else ""


@register.simple_tag
def signature_form(form: object, trace: lineage.Trace) -> SignatureForm:
    """The bound form after a refused attempt, or a fresh one carrying the digest on screen."""
    return form if isinstance(form, SignatureForm) else SignatureForm(initial={"digest": trace.digest})
