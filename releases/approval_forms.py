"""Forms for the signed decisions and the rollback confirmation, shared by the pages and the admin."""

from __future__ import annotations

from django import forms

from releases.models import Approval


class SignatureForm(forms.Form):
    """An electronic signature: the decision, what it means, and the signer's password re-entered.

    Nothing is preselected: the signer chooses the decision and the meaning deliberately.
    """

    decision = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose approve or reject."},
    )
    meaning = forms.ChoiceField(
        choices=[(meaning, f"{meaning}: {commitment}") for meaning, commitment in Approval.MEANINGS.items()],
        widget=forms.RadioSelect,
        required=False,
        help_text="What your approval commits you to.",
    )
    comment = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Required when you reject."
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Your password is your signature.",
    )
    digest = forms.CharField(widget=forms.HiddenInput, required=False)

    def clean(self) -> dict[str, str]:
        data: dict[str, str] = super().clean() or {}
        if data.get("decision") == "reject" and not data.get("comment", "").strip():
            self.add_error("comment", "A rejection needs a comment saying why.")
        if data.get("decision") == "approve" and not data.get("meaning"):
            self.add_error("meaning", "State what your approval means.")
        return data


class RollbackForm(forms.Form):
    """The confirmation of a rollback: the target the person saw, and why."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded with the rollback, e.g. the incident link."
    )
    target = forms.CharField(widget=forms.HiddenInput)
    next = forms.CharField(widget=forms.HiddenInput, required=False)


class DeploymentForm(forms.Form):
    """Record that a release went live on an endpoint (production takes validly approved releases only)."""

    release = forms.CharField(max_length=100, help_text="Release name, e.g. churn-v42.")
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
