"""The debug page's filter: no password of a URL-shaped setting or request variable on screen.

Django already hides settings whose *name* looks secret (``PASSWORD``, ``SECRET_KEY``...), but not a
password inside a value: ``DATABASE_URL=postgres://app:hunter2@db/lineage``, ``REDIS_URL``, the Celery
broker and result backend, a cache ``LOCATION``, and the process environment that runserver copies into
``request.META``. This filter masks the password part of every URL it finds in any of them.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host: the password runs to the last "@" before the path, so one holding an
# unencoded "@" is masked whole.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^/\s]+)@")


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced by stars."""
    return _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}{SafeExceptionReporterFilter.cleansed_substitute}@", text)


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    """Django's filter, plus URL passwords masked in settings, request variables and frame variables."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        return mask_url_passwords(cleansed) if isinstance(cleansed, str) else cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (name, mask_url_passwords(value) if isinstance(value, str) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
