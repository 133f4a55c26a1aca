"""The signature form: a blank one's widgets rendered once per process, a filled-in one every time."""

from __future__ import annotations

from typing import Any

from django.forms.boundfield import BoundField
from django.forms.renderers import DjangoTemplates
from django.test import override_settings

from releases.approval_forms import SignatureForm

FIELDS = ("decision", "meaning", "comment", "password", "digest")


class CountingRenderer(DjangoTemplates):
    """Django's own renderer, counting the templates it renders."""

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[str] = []

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        self.rendered.append(template_name)
        return super().render(template_name, context, request)


def as_django_renders(form: SignatureForm) -> dict[str, str]:
    """Each field as Django's own bound field writes it."""
    return {name: str(BoundField(form, form.fields[name], name)) for name in FIELDS}


def test_a_blank_form_is_written_as_django_writes_it_and_its_widgets_are_rendered_once() -> None:
    renderer = CountingRenderer()
    first = SignatureForm(initial={"digest": "a" * 64}, renderer=renderer)
    assert {name: str(first[name]) for name in FIELDS} == as_django_renders(first)
    renderer.rendered.clear()

    again = SignatureForm(initial={"digest": "b" * 64}, renderer=renderer)
    written = {name: str(again[name]) for name in FIELDS}

    # Of the 5 fields only the digest (its value is the release's) went through the templates again.
    assert renderer.rendered == ["django/forms/widgets/hidden.html"]
    assert written == as_django_renders(again)
    assert 'value="' + "b" * 64 + '"' in written["digest"]


def test_a_submitted_form_shows_what_was_typed_and_its_errors_every_time() -> None:
    renderer = CountingRenderer()
    str(SignatureForm(renderer=renderer)["comment"])  # the blank comment box, kept
    typed = SignatureForm(
        {"decision": "approve", "comment": "<b>fine</b>", "password": "x", "digest": "c" * 64}, renderer=renderer
    )
    refused = SignatureForm({"decision": "reject", "comment": " ", "digest": "c" * 64}, renderer=renderer)
    assert not typed.is_valid()
    assert not refused.is_valid()
    renderer.rendered.clear()

    comment, decision = str(typed["comment"]), str(typed["decision"])

    assert "&lt;b&gt;fine&lt;/b&gt;" in comment
    assert 'value="approve" required id="id_decision_0" checked' in decision
    assert renderer.rendered.count("django/forms/widgets/textarea.html") == 1
    assert comment == as_django_renders(typed)["comment"]
    assert refused.errors["comment"] == ["A rejection needs a comment saying why."]
    assert str(refused["comment"]) == as_django_renders(refused)["comment"]


def test_a_field_given_a_value_or_attributes_of_its_own_is_rendered_each_time() -> None:
    renderer = CountingRenderer()
    form = SignatureForm(initial={"comment": "prefilled"}, renderer=renderer)
    assert "prefilled" in str(form["comment"])
    assert 'class="wide"' in form["meaning"].as_widget(attrs={"class": "wide"})
    assert 'class="wide"' not in str(SignatureForm(renderer=renderer)["meaning"])


def test_widgets_are_rendered_again_under_another_renderer() -> None:
    blank = str(SignatureForm()["comment"])
    with override_settings(FORM_RENDERER=f"{__name__}.CountingRenderer"):
        form = SignatureForm()
        assert str(form["comment"]) == blank
        assert form.renderer.rendered == ["django/forms/widgets/textarea.html"]  # type: ignore[attr-defined]
    assert str(SignatureForm()["comment"]) == blank


def test_a_field_changed_on_one_form_is_rendered_as_changed_not_as_kept() -> None:
    blank = {name: str(SignatureForm()[name]) for name in ("comment", "meaning", "password")}

    changed = SignatureForm()
    changed.fields["comment"].widget.attrs["placeholder"] = "Why?"
    changed.fields["meaning"].disabled = True
    changed.fields["meaning"].choices = [("authorship", "authorship: I wrote it")]
    changed.fields["password"].required = False
    written = {name: str(changed[name]) for name in ("comment", "meaning", "password")}

    django_wrote = as_django_renders(changed)
    assert written == {name: django_wrote[name] for name in written}
    assert 'placeholder="Why?"' in written["comment"]
    assert "disabled" in written["meaning"]
    assert "I wrote it" in written["meaning"]
    assert "required" not in written["password"]
    assert {name: str(SignatureForm()[name]) for name in blank} == blank
