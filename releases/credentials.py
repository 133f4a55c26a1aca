"""Secrets that are named, never stored: a row holds the name of an environment variable, and the value is
read when it is needed, in the process that needs it (a worker delivering a webhook).

The settings' ``NAME_FILE`` convention applies: when ``NAME_FILE`` is set, the secret is that file's
content (a Docker or Kubernetes secret), else the value of ``NAME``. So a file path lives in the
deployment's environment too, never in the database: an administrator can choose which variable a
subscription uses, but not make the product use an arbitrary file on the server as a signing key, which
signatures sent to an address of their choosing would let them guess at offline.

Names are limited to one prefix for the same reason: ``DATABASE_URL`` or ``SECRET_KEY`` must never be
usable as a key whose signatures leave the server.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
MAX_NAME = 100


class SecretUnavailable(Exception):
    """The named secret cannot be read here; the message says why, in one line."""


def name_problem(name: str, *, prefix: str) -> str:
    """Why ``name`` cannot name a secret (empty when it can): capitals, digits and ``_``, starting with ``prefix``."""
    if not _NAME.match(name) or len(name) > MAX_NAME:
        return f"an environment variable name is capitals, digits and _ (at most {MAX_NAME}), not {name[:80]!r}"
    if not name.startswith(prefix) or name == prefix:
        return f"the secret's environment variable must be named {prefix}<SOMETHING>, not {name!r}"
    if name.endswith("_FILE"):
        return f"name the variable itself ({name.removesuffix('_FILE')}); {name} is read when it is set"
    return ""


def resolve(name: str) -> str:
    """The secret named ``name``: the content of the file ``NAME_FILE`` names, else the value of ``NAME``."""
    file_path = os.environ.get(f"{name}_FILE", "")
    if file_path:
        try:
            value = Path(file_path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SecretUnavailable(f"the secret file {file_path} (from {name}_FILE) cannot be read: {why}") from None
        if not value:
            raise SecretUnavailable(f"the secret file {file_path} (from {name}_FILE) is empty")
        return value
    value = os.environ.get(name, "")
    if not value:
        raise SecretUnavailable(f"the secret {name} is not set in this process's environment (nor {name}_FILE)")
    return value


def where(name: str) -> str:
    """Which of ``NAME_FILE`` and ``NAME`` is set in this process, never the value."""
    if not name:
        return "none"
    if os.environ.get(f"{name}_FILE"):
        return f"{name}, read from the file {name}_FILE names"
    if os.environ.get(name):
        return f"{name}, set in the environment"
    return f"{name}, not set in this process (set it, or {name}_FILE, where the workers run)"
