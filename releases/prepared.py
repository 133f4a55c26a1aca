"""Querysets of a fixed shape whose SQL is compiled once per database connection.

Compiling a queryset to SQL is pure Python and repeats the same work on every request: the trace's
query, which follows fifteen joins, takes longer to compile than PostgreSQL takes to run it.
A ``PreparedQuery`` compiles its queryset once with a placeholder for each named value, then runs that
SQL with the caller's values and builds the rows with Django's own model loading (``Model.from_db`` and
the ``select_related`` populators), so each row is the instance the queryset itself would give.

A list of ids is one value too, through the ``any_of`` lookup (``pk__any_of=[3, 5, 8]``): ``IN (%s, %s,
%s)`` would be new SQL for each length, compiled again by Django and planned again by PostgreSQL.

On PostgreSQL the queryset's own constants (a state, a decision, a number of signers) are written into the
SQL as literals, and only the caller's values stay parameters. A statement run often is prepared
(DB_SERVER_SIDE_BINDING) and PostgreSQL then plans it once for any parameters: with ``state = $3`` it could
not know that most releases are approved, and planned the rollback target's search as a sort of every
deployment of the endpoint instead of a walk down its newest (12 ms a board instead of 2).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast
from weakref import WeakKeyDictionary, WeakSet

from django.core.signals import setting_changed
from django.db import NotSupportedError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Lookup
from django.db.models.functions import Coalesce
from django.db.models.query import ValuesListIterable, get_related_populators
from django.db.models.sql.compiler import SQLCompiler
from django.dispatch import receiver
from psycopg import sql as psycopg_sql

M = TypeVar("M", bound=models.Model)

# Placeholders stand for the caller's values only while the query is compiled, and are told apart from the
# constants the queryset holds by value: text with a NUL (which PostgreSQL refuses in text), an integer below
# every key and version.
_TEXT = "\x00prepared:{}\x00"
_INTEGER = -1_987_654_321


class _Values(list[Any]):
    """A list of values sent as one parameter: an array to PostgreSQL, JSON text to SQLite."""

    item: type = object
    items = "values"

    @classmethod
    def checked(cls, values: Iterable[Any]) -> _Values:
        """``values`` as this kind of list, each checked to be of its type (TypeError otherwise)."""
        found = cls(values)
        if not all(type(value) is cls.item for value in found):
            raise TypeError(f"{cls.__name__} takes {cls.items} only")
        return found


class IdList(_Values):
    """The ids of an ``any_of`` lookup, or a prepared query's list of ids."""

    item = int
    items = "whole numbers"


class TextList(_Values):
    """A prepared query's list of texts (compared with ``= ANY(%s::text[])`` on PostgreSQL, ``json_each`` on
    SQLite)."""

    item = str
    items = "texts"


sqlite3.register_adapter(IdList, json.dumps)
sqlite3.register_adapter(TextList, json.dumps)


@models.IntegerField.register_lookup
@models.ForeignKey.register_lookup
class AnyOf(Lookup):
    """``column__any_of=ids``: the rows whose column is one of ``ids`` (whole numbers), with SQL that stays
    the same whatever their number: ``= ANY(%s)`` on PostgreSQL, ``IN (SELECT value FROM json_each(%s))``
    on SQLite."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> _Values:
        return IdList.checked(self.rhs)

    def _sql(self, compiler: Any, connection: BaseDatabaseWrapper, template: str) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return template.format(lhs), (*lhs_params, IdList(self.rhs))

    def as_postgresql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        return self._sql(compiler, connection, "{} = ANY(%s::bigint[])")

    def as_sqlite(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        return self._sql(compiler, connection, "{} IN (SELECT value FROM json_each(%s))")

    def as_sql(self, compiler: Any, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        raise NotSupportedError(f"any_of is written for PostgreSQL and SQLite, not {connection.vendor}")


# Each placeholder of Django's SQL, and each percent sign it doubled so as not to be read as one.
_PLACEHOLDER_OR_PERCENT = re.compile(r"%s|%%")


def _plain(constant: object) -> str | int | bool | None:
    """A constant as the plain text, whole number or boolean it is sent as (a state of ``Release.State`` as
    its text); None for any other kind of value."""
    if isinstance(constant, bool):
        return bool(constant)
    if isinstance(constant, int):
        return int.__int__(constant)
    if isinstance(constant, str):
        return str.__str__(constant)
    return None


def _with_constants_written(sql: str, params: tuple[tuple[str, Any], ...]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``sql`` with each constant of the queryset (text, a whole number, a boolean) as a literal, quoted by
    psycopg, and the parameters left: the caller's values and the constants of other types."""
    kept: list[tuple[str, Any]] = []
    remaining = iter(params)

    def written(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%%"
        name, constant = next(remaining)
        literal = None if name else _plain(constant)
        if literal is None:
            kept.append((name, constant))
            return "%s"
        # A literal's own percent signs are doubled, as the rest of the statement's are.
        return psycopg_sql.Literal(literal).as_string(None).replace("%", "%%")

    rewritten = _PLACEHOLDER_OR_PERCENT.sub(written, sql)
    if next(remaining, None) is not None:
        raise TypeError("the compiled SQL has fewer placeholders than parameters")
    return rewritten, tuple(kept)


def _key(value: object) -> object:
    """A parameter as a dictionary key (a list of ids as a tuple)."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Each parameter: the name of the caller's value it takes, or ("", constant) for one the queryset fixed.
    params: tuple[tuple[str, Any], ...]
    compiler: SQLCompiler
    converters: dict[int, Any]
    # For model rows: the model's columns, where they end, and each annotation's name and the column it is
    # read from (set on the row as the queryset sets it). Empty for tuples.
    init_list: list[str]
    fields_end: int
    annotations: tuple[tuple[str, int], ...]


class _Prepared:
    """What both kinds of prepared query share: compile ``build(**placeholders)`` once per connection, run
    it with the caller's values, give the rows with Django's converters applied."""

    def __init__(self, build: Callable[..., models.QuerySet[Any]], **kinds: type) -> None:
        self.build = build
        self.kinds = kinds
        self._compiled: WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = WeakKeyDictionary()
        self._lock = threading.Lock()
        # The database the queryset reads from (its router's choice), known once it is first built.
        self._using = ""
        _EVERY.add(self)

    def forget(self) -> None:
        """Drop the compiled SQL: the next call compiles it again."""
        with self._lock:
            self._compiled.clear()
            self._using = ""

    def _placeholders(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for number, (name, kind) in enumerate(self.kinds.items()):
            if kind is str:
                found[name] = _TEXT.format(name)
            elif kind is int:
                found[name] = _INTEGER - number
            elif kind is list:
                found[name] = IdList([_INTEGER - number])
            elif kind is TextList:
                found[name] = TextList([_TEXT.format(name)])
            else:
                raise TypeError(f"a prepared value is str, int, list (of ids) or TextList, not {kind!r} ({name})")
        return found

    def _check_shape(self, queryset: models.QuerySet[Any]) -> None:
        raise NotImplementedError

    def _rows_of(self, compiler: SQLCompiler) -> tuple[list[str], int, tuple[tuple[str, int], ...]]:
        """What building model rows needs: ``_Compiled.init_list``, ``fields_end``, ``annotations``."""
        return [], 0, ()

    def _compile(self, connection: BaseDatabaseWrapper) -> _Compiled:
        placeholders = self._placeholders()
        queryset = self.build(**placeholders)
        if queryset._prefetch_related_lookups:  # type: ignore[attr-defined]
            raise TypeError("a prepared query reads its rows in one query (no prefetch)")
        self._check_shape(queryset)
        compiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        names = {_key(value): name for name, value in placeholders.items()}
        given = tuple(
            (names.get(_key(value), "") if isinstance(value, str | int | list) else "", value) for value in params
        )
        missing = placeholders.keys() - {name for name, _ in given}
        if missing:
            raise TypeError(f"the prepared query does not use {', '.join(sorted(missing))}")
        if connection.vendor == "postgresql":
            sql, given = _with_constants_written(sql, given)
        init_list, fields_end, annotations = self._rows_of(compiler)
        return _Compiled(
            sql=sql,
            params=given,
            compiler=compiler,
            converters=compiler.get_converters([s[0] for s in compiler.select[: compiler.col_count]]),
            init_list=init_list,
            fields_end=fields_end,
            annotations=annotations,
        )

    def compiled(self, connection: BaseDatabaseWrapper) -> _Compiled:
        compiled = self._compiled.get(connection)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(connection) or self._compile(connection)
                self._compiled[connection] = compiled
        return compiled

    def _database(self) -> str:
        """The database the queryset reads from (its router's choice)."""
        if not self._using:
            self._using = self.build(**self._placeholders()).db
        return self._using

    def _run(self, values: dict[str, object]) -> tuple[_Compiled, str, Any]:
        """The compiled query, the database and the rows for these values, converted as Django converts them."""
        compiled, using, rows = self._fetch(values)
        return compiled, using, self._converted(compiled, rows)

    @staticmethod
    def _converted(compiled: _Compiled, rows: Any) -> Any:
        if rows and compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        return rows

    def _fetch(self, values: dict[str, object]) -> tuple[_Compiled, str, list[tuple[Any, ...]]]:
        """The compiled query, the database and the rows for these values as the driver gives them."""
        if values.keys() != self.kinds.keys():
            raise TypeError(f"a prepared query takes {', '.join(self.kinds)}, not {', '.join(values)}")
        using = self._database()
        connection = connections[using]
        compiled = self.compiled(connection)
        params: list[Any] = [
            (constant.checked(cast("Iterable[Any]", values[name])) if isinstance(constant, _Values) else values[name])
            if name
            else constant
            for name, constant in compiled.params
        ]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled, using, rows


class Rows(list[tuple[Any, ...]]):
    """A prepared query's rows as the driver gave them, and the database they came from."""

    def __init__(self, rows: Iterable[tuple[Any, ...]], using: str) -> None:
        super().__init__(rows)
        self.using = using

    def some(self, rows: Iterable[tuple[Any, ...]]) -> Rows:
        """Some of these rows, from the same database."""
        return Rows(rows, self.using)


class PreparedQuery(_Prepared, Generic[M]):
    """``build(**values)`` compiled once per connection; ``all(**values)`` runs it with these values.

    ``kinds`` names each value and its type: str, int, list (of ids, for an ``any_of`` lookup) or ``TextList``.
    The queryset may hold other fixed values and annotations (set on each row, as the queryset sets them), but
    no ``prefetch_related``, ``values()`` or ``defer()`` (the rows are built as ``select_related`` instances).

    A value the queryset reads when it is built (a setting, such as the number of signers an approval needs)
    is compiled in with it. Settings do not change while a process runs; when a test changes one, every
    prepared query is compiled again (``setting_changed``), so no caller passes settings as values.
    """

    def __init__(self, build: Callable[..., models.QuerySet[M]], **kinds: type) -> None:
        super().__init__(build, **kinds)

    def _check_shape(self, queryset: models.QuerySet[Any]) -> None:
        if queryset._fields is not None:  # type: ignore[attr-defined]
            raise TypeError("a prepared query builds select_related rows (no values(); PreparedTuples reads tuples)")
        if queryset.query.deferred_loading != (frozenset(), True):
            raise TypeError("a prepared query reads whole rows (no defer() or only())")

    def _rows_of(self, compiler: SQLCompiler) -> tuple[list[str], int, tuple[tuple[str, int], ...]]:
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        if start != 0:
            raise TypeError("a prepared query selects its own model's columns first")
        return (
            [f[0].target.attname for f in select[start:end]],
            end,
            tuple(compiler.annotation_col_map.items()),
        )

    def all(self, **values: object) -> list[M]:
        """The rows for these values, as ``list(build(**values))`` gives them."""
        return self.instances(self.rows(**values))

    def rows(self, **values: object) -> Rows:
        """The rows for these values as the database driver gives them, before Django converts them or builds
        any instance: plain values to compare with rows read before (``instances`` builds them)."""
        _, using, rows = self._fetch(values)
        return Rows(rows, using)

    def column(self, attname: str) -> int:
        """Where the queryset's own model's field ``attname`` (``run_id``) sits in each of ``rows``."""
        return self.compiled(connections[self._database()]).init_list.index(attname)

    def instances(self, rows: Rows) -> list[M]:
        """The instances ``rows`` (a ``rows()``, or ``some`` of one) stand for, as ``all()`` builds them."""
        if not rows:
            return []
        using = rows.using
        compiled = self.compiled(connections[using])
        converted = self._converted(compiled, rows)
        compiler = compiled.compiler
        model = compiler.klass_info["model"]
        populators = get_related_populators(compiler.klass_info, compiler.select, using)  # type: ignore[call-arg]
        found = []
        for row in converted:
            instance = model.from_db(using, compiled.init_list, row[: compiled.fields_end])
            for populator in populators:
                populator.populate(row, instance)
            for name, column in compiled.annotations:
                setattr(instance, name, row[column])
            found.append(instance)
        return found

    def first(self, **values: object) -> M | None:
        """The first row for these values, or None."""
        rows = self.all(**values)
        return rows[0] if rows else None


class PreparedTuples(_Prepared):
    """A ``values_list()`` queryset (aggregates and unions too) compiled once per connection; ``all(**values)``
    gives its rows as tuples, as ``list(build(**values))`` does."""

    def _check_shape(self, queryset: models.QuerySet[Any]) -> None:
        if queryset._iterable_class is not ValuesListIterable:
            raise TypeError("prepared tuples come from values_list() (not flat, not named, not values())")

    def all(self, **values: object) -> list[tuple[Any, ...]]:
        """The rows for these values, as tuples."""
        _, _, rows = self._run(values)
        return [tuple(row) for row in rows]


_EVERY: WeakSet[_Prepared] = WeakSet()


@receiver(setting_changed)
def _compile_again(**_: object) -> None:
    """A test changed a setting: what a queryset read from the old one must not stay in compiled SQL."""
    for query in list(_EVERY):
        query.forget()


@contextmanager
def planned_for_their_values() -> Iterator[None]:
    """Have PostgreSQL plan each statement run inside for the values it is given.

    Statements a connection runs often are prepared (DB_SERVER_SIDE_BINDING), and after five runs PostgreSQL
    may keep one generic plan for any value. That suits a query whose work is the same whatever it is given
    (a release's trace), not one whose work depends on it: a search for a rare name or for two letters every
    run matches, a dataset version one run used or one a hundred thousand did. With a generic plan such a
    page ran four to ten times slower from its sixth run on. The setting lasts until the transaction ends
    (inside a longer one, the rest of it is planned for its values too, which costs planning time only).
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


def sorted_not_walked(field: str) -> Coalesce:
    """``field`` as an expression no index matches, to order by: PostgreSQL then sorts the rows a filter
    keeps rather than walking an index in that order and testing each row until a page is full.

    The walk is right when the kept rows are spread along the index; when they all sit at its far end (the
    releases of the oldest runs, newest first) it tests every row before them, ninety thousand for one
    page at ten times the large set, where sorting the ten thousand kept takes a few milliseconds.
    ``COALESCE(x, x)`` is ``x``, NULLs included, on every database.
    """
    return Coalesce(F(field), F(field))
