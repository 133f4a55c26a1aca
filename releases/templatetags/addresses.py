"""``{% url %}`` that remembers what it reversed: loaded into every template in place of Django's own.

Reversing a name walks the URL resolver, matches each candidate pattern and quotes the result: about
45 microseconds, and the board reverses some eighty addresses a page (an endpoint, its live release and
its rollback target a row), 4 ms of its 36. An address depends only on the view name, the arguments, the
URL configuration and the script prefix, none of which a request changes; so the tag asks Django's own
``URLNode`` once per combination and keeps its answer. The arguments must be plain text or whole
numbers (names, versions, ids); with any other value the tag reverses every time, as Django's does.

What it keeps is bounded (``REMEMBERED``; past that it starts again) and forgotten when a setting changes
(tests override the URL configuration).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import defaulttags
from django.template.base import Parser, Token
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.safestring import SafeString

register = template.Library()

# Enough for every page's addresses across a few thousand releases; a worker's share of memory stays small.
REMEMBERED = 20_000
_remembered: dict[tuple[Any, ...], str] = {}


# Text a template wrote itself ("releases:release", "churn-v42") is SafeString: the same text.
_PLAIN_TYPES = (str, SafeString, int)


def _plain(values: list[Any]) -> tuple[str | int, ...] | None:
    """The values as a key, when each is plain text or a whole number (not another subclass, which may print
    otherwise)."""
    if all(type(value) in _PLAIN_TYPES for value in values):
        return tuple(str.__str__(v) if isinstance(v, str) else v for v in values)
    return None


def _remember(key: tuple[Any, ...], address: str) -> None:
    if len(_remembered) >= REMEMBERED:
        _remembered.clear()
    _remembered[key] = address


def address(viewname: str, *args: str | int) -> str:
    """``reverse(viewname, args=args)``, remembered for plain arguments."""
    plain = _plain(list(args))
    if plain is None:
        return reverse(viewname, args=args)
    key = ("reverse", get_urlconf(), get_script_prefix(), viewname, plain)
    found = _remembered.get(key)
    if found is None:
        found = reverse(viewname, args=args)
        _remember(key, found)
    return found


def _current_app(context: template.Context) -> object:
    """The application namespace Django's tag reverses in (read the same way), part of what an address depends on."""
    try:
        return context.request.current_app  # type: ignore[attr-defined]
    except AttributeError:
        try:
            return context.request.resolver_match.namespace  # type: ignore[attr-defined]
        except AttributeError:
            return None


class RememberedURLNode(defaulttags.URLNode):
    """Django's ``URLNode``, whose answer for plain arguments is kept and given again."""

    def render(self, context: template.Context) -> str:
        args = _plain([arg.resolve(context) for arg in self.args])
        kwargs = _plain([value.resolve(context) for value in self.kwargs.values()])
        view_name = _plain([self.view_name.resolve(context)])
        app = _current_app(context)
        if args is None or kwargs is None or view_name is None or type(app) not in (str, type(None)):
            return super().render(context)
        key = (
            "tag",
            get_urlconf(),
            get_script_prefix(),
            view_name,
            args,
            tuple(self.kwargs),
            kwargs,
            app,
            context.autoescape,
            # Django's tag gives nothing for an address it cannot reverse "as name", and fails without.
            self.asvar is not None,
        )
        found = _remembered.get(key)
        if found is None:
            # Django's own tag reverses (and escapes); "as name" puts its answer in the context instead.
            rendered = super().render(context)
            found = context[self.asvar] if self.asvar else rendered
            _remember(key, found)
        if self.asvar:
            context[self.asvar] = found
            return ""
        return found


@register.tag
def url(parser: Parser, token: Token) -> RememberedURLNode:
    """``{% url "name" arg ... %}``, ``{% url "name" arg as var %}``: as Django's tag, remembered."""
    node = defaulttags.url(parser, token)
    return RememberedURLNode(node.view_name, node.args, node.kwargs, node.asvar)


@receiver(setting_changed)
def _forget(**_: object) -> None:
    """A test changed a setting (the URL configuration, the script prefix): reverse again."""
    _remembered.clear()
