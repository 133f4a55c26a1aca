from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.db import models

from releases.errors import NotFound
from releases.numbers import whole_number
from releases.prepared import PreparedQuery

_DEFERRED = object()
M = TypeVar("M", bound=models.Model)


def get_or_refuse(
    source: models.QuerySet[M, M] | models.Manager[M] | PreparedQuery[M], what: str, **lookup: object
) -> M:
    """The row matching ``lookup``, or NotFound naming what was asked for (a 404, or exit 2 in a command)."""
    found = source.first(**lookup) if isinstance(source, PreparedQuery) else source.filter(**lookup).first()
    if found is None:
        wanted = ", ".join(str(value) for value in lookup.values())
        raise NotFound(f"no {what} named {wanted!r}")
    return found


# The largest values the integer columns hold on every supported database.
MAX_VERSION = 2_147_483_647  # PositiveIntegerField
MAX_BIG = 9_223_372_036_854_775_807  # PositiveBigIntegerField


def version_number(text: str) -> int | None:
    """A version number as a person types it (1 up to what the version columns hold), or None."""
    number = whole_number(text, most=MAX_VERSION)
    return number or None


class ImmutableFieldError(Exception):
    """A write tried to change a column that is fixed once the row exists."""


class GuardedModel(models.Model):
    """Refuses changes to ``immutable_fields`` after the row is first saved.

    The model layer is the first line; on PostgreSQL a ReadOnly trigger on the same
    columns also stops ``QuerySet.update()`` and raw SQL.
    """

    immutable_fields: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded_immutable = {name: self._immutable_value(name) for name in self.immutable_fields}

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            changed = [
                name
                for name in self.immutable_fields
                if self._loaded_immutable[name] is not _DEFERRED
                and self._immutable_value(name) != self._loaded_immutable[name]
            ]
            if changed:
                raise ImmutableFieldError(
                    f"{self._meta.verbose_name} {self}: {', '.join(changed)} cannot change once registered"
                )
        super().save(*args, **kwargs)
        self._loaded_immutable = {name: self._immutable_value(name) for name in self.immutable_fields}

    def _immutable_value(self, name: str) -> Any:
        # Read __dict__, not the attribute, so a deferred column is not fetched just to guard it.
        return self.__dict__.get(self._meta.get_field(name).attname, _DEFERRED)  # type: ignore[union-attr]
