"""``{{ address|web_href }}``: the one way a template puts a stored or computed address in an href or src.

Only a web address (http, https) or a path on this site passes; anything else (``javascript:``,
``data:``, a scheme hidden behind spaces or tabs, ``//elsewhere``) becomes an inert ``#``. The rule is
releases/web_links.py, the same one the model fields and services apply when the address is stored.
"""

from __future__ import annotations

from django import template

from releases.web_links import safe_href

register = template.Library()


@register.filter
def web_href(value: object) -> str:
    """The address when a page may link to it, else ``#`` (still autoescaped as an attribute value)."""
    return safe_href(value)
