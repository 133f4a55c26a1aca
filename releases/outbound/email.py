"""Email to the ML leads when a release waits for their signature, through Django's mail settings."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse

from audit.models import AuditEvent
from releases import lineage
from releases.errors import NotFound
from releases.models import Release
from releases.outbound.events import absolute
from releases.roles import ML_LEADS

# Refusals that are about the person, not the release: they are not asked to sign.
PERSONAL_RULES = frozenset({"four_eyes", "already_signed"})


def ask_leads_to_sign(seq: int) -> int:
    """Email each ML lead who may sign the release submitted in audit event ``seq``; returns how many were sent.

    Leads who may not sign it themselves (its creator, the run's author, one who already signed) are left
    out. When nobody can approve it as it stands (an incomplete chain, quarantined data), the email says
    why: it can still be reviewed and rejected.
    """
    event = AuditEvent.objects.filter(seq=seq, action="release.submitted").first()
    if event is None:
        return 0
    try:
        trace = lineage.trace(event.object_key)
    except NotFound:
        return 0
    if trace.release.state != Release.State.PENDING:
        return 0  # decided before this email went out
    messages = []
    for lead in User.objects.filter(groups__name=ML_LEADS, is_active=True).exclude(email="").order_by("username"):
        refusal = lineage.signing_refusal(trace, lead)
        if refusal is not None and refusal.rule in PERSONAL_RULES:
            continue
        messages.append(_message(trace, event, lead, blocker=refusal.message if refusal else ""))
    if messages:
        get_connection().send_messages(messages)
    return len(messages)


def _message(trace: lineage.Trace, event: AuditEvent, lead: User, *, blocker: str) -> EmailMessage:
    release = trace.release
    lines = [
        f"Hello {lead.get_full_name() or lead.get_username()},",
        "",
        f"{release.name} ({release.model_version.key}) was submitted for approval by {event.actor} "
        f"at {event.at:%Y-%m-%d %H:%M} UTC and is waiting for your signature.",
        "",
        f"Lineage digest: {release.lineage_digest}",
        f"Review and sign: {absolute(reverse('releases:release', args=[release.name]))}",
        f"Your approval queue: {absolute(reverse('releases:approvals'))}",
    ]
    if blocker:
        lines += ["", f"It cannot be approved as it stands: {blocker}. You may still review and reject it."]
    lines += ["", "You receive this because you are an ML lead in release lineage."]
    return EmailMessage(
        subject=f"[release lineage] {release.name} is waiting for your signature",
        body="\n".join(lines) + "\n",
        to=[lead.email],
    )
