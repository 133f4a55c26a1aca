"""Template helpers for what the current person may do and how a release stands, from the lineage rules."""

from __future__ import annotations

from django import template
from django.contrib.auth.models import AnonymousUser, User

from releases import lineage
from releases.approval_forms import SignatureForm
from releases.roles import may_act_as

register = template.Library()


@register.filter
def has_role(user: User | AnonymousUser, roles: str) -> bool:
    """``{% if user|has_role:"on-call,ml-leads" %}``: true for members of any listed role (and superusers)."""
    return may_act_as(user, *roles.split(","))


@register.filter
def release_status(trace: lineage.Trace) -> lineage.ReleaseStatus:
    """``{% with status=trace|release_status %}``: the one status a release is shown with."""
    return lineage.release_status(trace)


@register.simple_tag
def signing_refusal(trace: lineage.Trace, user: User | AnonymousUser, decision: str = "approve") -> str:
    """Why ``user`` cannot sign ``decision`` on ``trace``'s release right now (empty when they can)."""
    refusal = lineage.signing_refusal(trace, user, decision=decision)
    return refusal.message if refusal else ""


@register.simple_tag
def signature_form(form: object, trace: lineage.Trace) -> SignatureForm:
    """The bound form after a refused attempt, or a fresh one carrying the digest on screen."""
    return form if isinstance(form, SignatureForm) else SignatureForm(initial={"digest": trace.digest})
