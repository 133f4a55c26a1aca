from __future__ import annotations

import functools
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
        self._loaded_immutable = self._immutable_values()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            now = self._immutable_values()
            changed = [
                name
                for name, loaded in self._loaded_immutable.items()
                if loaded is not _DEFERRED and now[name] != loaded
            ]
            if changed:
                raise ImmutableFieldError(
                    f"{self._meta.verbose_name} {self}: {', '.join(changed)} cannot change once registered"
                )
        super().save(*args, **kwargs)
        self._loaded_immutable = self._immutable_values()

    def _immutable_values(self) -> dict[str, Any]:
        # Read __dict__, not the attribute, so a deferred column is not fetched just to guard it.
        values = self.__dict__
        return {name: values.get(attname, _DEFERRED) for name, attname in _immutable_columns(type(self))}


@functools.cache
def _immutable_columns(model: type[GuardedModel]) -> tuple[tuple[str, str], ...]:
    """Each immutable field of ``model`` with its column's attribute name, looked up once per model (every row
    read is guarded: a page builds a hundred)."""
    return tuple((name, model._meta.get_field(name).attname) for name in model.immutable_fields)  # type: ignore[union-attr]
