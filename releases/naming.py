"""The release naming policy: ``<model>-v<N>``, nothing a reader has to guess about."""

from __future__ import annotations

import re

from django.conf import settings

from releases.errors import InvalidInput

# Words that say nothing about what changed; a release called "final-final-v2" is an incident waiting.
AMBIGUOUS_WORDS = frozenset(
    {"final", "new", "newest", "latest", "old", "tmp", "temp", "test", "copy", "fixed", "fix", "wip"}
)


def model_prefix(registered_model_name: str) -> str:
    """``churn-model`` releases are called ``churn-vN``; other names are used as they are."""
    return registered_model_name.removesuffix("-model")


def check_release_name(name: str, registered_model_name: str) -> None:
    """Refuse a release name that breaks the policy, saying what a good one looks like."""
    example = f"{model_prefix(registered_model_name)}-v<N>"
    match = re.fullmatch(settings.LINEAGE_RELEASE_NAME_PATTERN, name)
    if not match:
        raise InvalidInput(
            f"release name {name!r} does not follow the naming policy; use {example}", rule="naming_policy"
        )
    words = set(re.split(r"[-_.]", name.lower()))
    vague = sorted(words & AMBIGUOUS_WORDS)
    if vague:
        raise InvalidInput(
            f"release name {name!r} is ambiguous ({', '.join(vague)} says nothing about what changed); use {example}",
            rule="naming_policy",
        )
    declared = match.groupdict().get("model")
    if declared is not None and declared not in {registered_model_name, model_prefix(registered_model_name)}:
        raise InvalidInput(
            f"release name {name!r} names model {declared!r} but releases {registered_model_name}; use {example}",
            rule="naming_policy",
        )
