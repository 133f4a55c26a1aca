"""The one rule for an address that a page turns into a link: a web address (http or https), or a path
on this site. Every door that stores such an address (model field validators, so admin forms too;
services, so commands, the API and the demo too) and every template that renders one (the
``web_href`` filter) asks this module, never the address itself. The address the product sends
outbound events to follows the same rule, and carries no credentials (``delivery_url_problem``).

Browsers forgive a lot before they read a scheme: they drop leading spaces and control characters,
remove tabs and newlines anywhere, ignore case and treat a backslash as a slash. So an address with any
of those is refused outright rather than cleaned, and the scheme is read the way ``urlsplit`` reads it:
``JaVaScRiPt:``, `` javascript:``, ``java\\tscript:``, ``data:``, ``vbscript:``, an entity-encoded
colon and a scheme-relative ``//host`` all fail.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

WEB_SCHEMES = frozenset({"http", "https"})
# What a refused address is rendered as: a link to nowhere, not a link to somewhere else.
INERT_HREF = "#"


def _has_hidden_characters(value: str) -> bool:
    # Spaces, C0 controls (tab, newline...), DEL and backslashes are each read differently by browsers
    # and by urlsplit; a real address has them percent-encoded.
    return any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in value)


def web_url_problem(value: object) -> str:
    """Why ``value`` is not an absolute http(s) address (empty when it is one)."""
    if not isinstance(value, str) or not value:
        return "an address is required"
    if _has_hidden_characters(value):
        return "an address cannot contain spaces, control characters or backslashes"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return "the address cannot be read"
    if parts.scheme.lower() not in WEB_SCHEMES:
        return "only http:// and https:// addresses are accepted"
    if not host:
        return "the address has no host"
    return ""


def delivery_url_problem(value: object) -> str:
    """Why the product must not POST to ``value`` (empty when it may): a web address, as ``web_url_problem``
    reads it, that carries no user name or password (a secret kept in clear) and whose port can be read."""
    problem = web_url_problem(value)
    if problem:
        return problem
    parts = urlsplit(str(value))
    if parts.username is not None or parts.password is not None:
        return "an address cannot carry a user name or password; name the secret instead"
    try:
        parts.port  # noqa: B018 - reading it is the check: a port out of range or not a number raises
    except ValueError:
        return "the address's port is not a number from 0 to 65535"
    return ""


def is_web_url(value: object) -> bool:
    """True for an absolute http:// or https:// address with a host, and nothing that hides a scheme."""
    return not web_url_problem(value)


def is_site_path(value: object) -> bool:
    """True for a link within this site: ``/path``, ``?query`` or ``#fragment`` (never ``//host``)."""
    if not isinstance(value, str) or not value or _has_hidden_characters(value):
        return False
    if value.startswith("//"):
        return False
    return value[0] in "/?#"


def safe_href(value: object) -> str:
    """``value`` when a page may link to it (a web address or a site path), else an inert ``#``."""
    if is_web_url(value) or is_site_path(value):
        return str(value)
    return INERT_HREF


@deconstructible
class WebUrlValidator:
    """Field validator: only an absolute http(s) address (blank fields are left to ``blank=``)."""

    code = "not_a_web_url"

    def __call__(self, value: str) -> None:
        problem = web_url_problem(value)
        if problem:
            raise ValidationError(f"{problem}, not {str(value)[:80]!r}", code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebUrlValidator)

    def __hash__(self) -> int:
        return hash(self.code)


validate_web_url = WebUrlValidator()


@deconstructible
class DeliveryUrlValidator:
    """Field validator for an address the product sends to: ``delivery_url_problem``."""

    code = "not_a_delivery_url"

    def __call__(self, value: str) -> None:
        problem = delivery_url_problem(value)
        if problem:
            raise ValidationError(f"{problem}, not {str(value)[:80]!r}", code=self.code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeliveryUrlValidator)

    def __hash__(self) -> int:
        return hash(self.code)


validate_delivery_url = DeliveryUrlValidator()
