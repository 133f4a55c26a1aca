"""Forms for the signed decisions and the rollback confirmation, shared by the pages and the admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.forms.boundfield import BoundField
from django.utils.safestring import SafeString
from django.utils.translation import get_language

from releases.models import Approval

# The widgets of blank forms, as rendered once, by what each one's HTML is made of (``RenderedOnceWhenBlank``).
_blank_widgets: dict[tuple[Any, ...], SafeString] = {}


class RenderedOnceWhenBlank(BoundField):
    """A field whose widget, while nobody has filled it in, is rendered once per process and given again.

    A release's page offers the signature form to every signer: its radio buttons, comment box and password
    field are the same on every page until someone submits them, and Django renders a widget through a
    dozen nested templates (2.7 ms of a page for this form). A field with a value, a form that was submitted
    (its errors and what was typed are shown again) or a call with a widget or attributes of its own is
    rendered as Django renders it, every time.

    What is kept is found by what the widget's HTML is made of: its name and id, its class, the attributes
    Django builds for it from the field and the form (``build_widget_attrs``: required, disabled, the help
    text's id), its choices, the renderer and the language. A view that changes a field of one form (its
    widget's attributes, disabled, required, choices) gets that field rendered anew, not one kept from before.
    """

    def as_widget(
        self, widget: forms.Widget | None = None, attrs: dict[str, Any] | None = None, only_initial: bool = False
    ) -> SafeString:
        if widget is not None or attrs or only_initial or self.form.is_bound or self.value() not in (None, ""):
            return super().as_widget(widget, attrs, only_initial)
        built = self.field.widget
        key = (
            self.html_name,
            self.auto_id,
            type(built),
            repr(sorted(self.build_widget_attrs(built.attrs).items())),
            repr(list(getattr(built, "choices", ()))),
            self.form.renderer,
            get_language(),
        )
        rendered = _blank_widgets.get(key)
        if rendered is None:
            rendered = _blank_widgets[key] = super().as_widget()
        return rendered


@receiver(setting_changed)
def _render_again(**_: object) -> None:
    """Templates and renderers are settings: what was rendered under the old ones is forgotten."""
    _blank_widgets.clear()


class SignatureForm(forms.Form):
    """An electronic signature: the decision, what it means, and the signer's password re-entered.

    Nothing is preselected: the signer chooses the decision and the meaning deliberately.
    """

    bound_field_class = RenderedOnceWhenBlank

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
