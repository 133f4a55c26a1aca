"""``{% url %}`` remembers what it reversed, and gives what Django's own tag gives for every argument."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

from releases.templatetags import addresses

ODD_NAMES = ("churn-v42", "a b", "ü<script>&\"'", "50%", "x?y#z")


@pytest.fixture(autouse=True)
def _nothing_remembered():
    addresses._remembered.clear()
    yield
    addresses._remembered.clear()


def test_every_template_uses_the_remembering_tag():
    template = Template('{% url "releases:release" name %}')
    assert isinstance(template.nodelist[0], addresses.RememberedURLNode)


def test_it_gives_what_django_reverses_escaped_as_django_escapes_it_the_first_time_and_after():
    template = Template('<a href="{% url "releases:release" name %}">{% url "releases:dataset_version" name 7 %}</a>')
    for _ in range(2):
        for name in ODD_NAMES:
            expected = (
                f'<a href="{escape(reverse("releases:release", args=[name]))}">'
                f"{escape(reverse('releases:dataset_version', args=[name, 7]))}</a>"
            )
            assert template.render(Context({"name": name})) == expected
    # Each (name, arguments) once.
    assert len(addresses._remembered) == 2 * len(ODD_NAMES)


def test_as_a_variable_and_unescaped_when_autoescape_is_off():
    template = Template(
        '{% url "releases:release" name as here %}[{{ here }}]{% autoescape off %}{% url "releases:release" name %}'
        "{% endautoescape %}"
    )
    for _ in range(2):
        raw = reverse("releases:release", args=["a&b"])
        assert template.render(Context({"name": "a&b"})) == f"[{escape(raw)}]{raw}"


def test_a_name_that_reverses_to_nothing_fails_as_djangos_does_or_gives_nothing_as_a_variable():
    with pytest.raises(NoReverseMatch):
        Template('{% url "releases:no-such-page" %}').render(Context({}))
    # The str converter takes no slash: Django refuses it, every time.
    for _ in range(2):
        with pytest.raises(NoReverseMatch):
            Template('{% url "releases:release" name %}').render(Context({"name": "a/b"}))
        assert (
            Template('{% url "releases:release" name as here %}[{{ here }}]').render(Context({"name": "a/b"})) == "[]"
        )


@pytest.mark.django_db
def test_other_arguments_are_reversed_each_time_not_remembered(story):
    release = story["v42"]
    # A model instance becomes its text when reversed: not plain, so never a key.
    html = Template('{% url "releases:release" release %}').render(Context({"release": release}))
    assert html == escape(reverse("releases:release", args=[str(release)]))
    assert addresses._remembered == {}


def test_another_url_configuration_gives_its_own_addresses():
    template = Template('{% url "releases:release" "churn-v42" %}')
    here = template.render(Context({}))
    with override_settings(ROOT_URLCONF="tests.unit.templatetags.elsewhere_urls"):
        assert template.render(Context({})) == "/elsewhere/r/churn-v42/"
    assert template.render(Context({})) == here == reverse("releases:release", args=["churn-v42"])


def test_address_gives_what_django_reverses_and_what_it_keeps_is_bounded(monkeypatch):
    assert addresses.address("releases:endpoint", "churn-scoring") == reverse(
        "releases:endpoint", args=["churn-scoring"]
    )
    assert addresses.address("releases:dataset_version", "d", 3) == reverse("releases:dataset_version", args=["d", 3])
    monkeypatch.setattr(addresses, "REMEMBERED", 5)
    for number in range(12):
        assert addresses.address("releases:release", f"r{number}") == f"/releases/r{number}/"
        assert len(addresses._remembered) <= 5


def test_what_was_reversed_is_given_again_not_reversed_again():
    """The second time, the answer comes from what was kept: a kept answer changed by hand shows through,
    for the tag and for ``address``, while other arguments are still reversed."""
    template = Template('{% url "releases:release" name %}')
    assert template.render(Context({"name": "churn-v42"})) == "/releases/churn-v42/"
    assert addresses.address("releases:endpoint", "churn-scoring") == "/endpoints/churn-scoring/"
    (tag_key,) = [key for key in addresses._remembered if key[0] == "tag"]
    (address_key,) = [key for key in addresses._remembered if key[0] == "reverse"]
    addresses._remembered[tag_key] = "/kept/"
    addresses._remembered[address_key] = "/kept-too/"

    assert template.render(Context({"name": "churn-v42"})) == "/kept/"
    assert addresses.address("releases:endpoint", "churn-scoring") == "/kept-too/"
    assert template.render(Context({"name": "churn-v41"})) == "/releases/churn-v41/"
