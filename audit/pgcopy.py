"""PostgreSQL COPY for bulk writes: tens of thousands of rows in the time INSERT ... VALUES takes for a few
thousand. Generic plumbing under the models: it knows COPY's text format, nothing of the domain.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Sequence

from django.db import connection, models

# COPY's text format: a backslash, tab, newline or carriage return inside a value must be escaped. In this
# order when replaced one after another: the backslash first, so the escapes' own are not doubled.
_IN_ORDER = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
_ESCAPES = str.maketrans(dict(_IN_ORDER))
_NEEDS_ESCAPE = re.compile("[" + re.escape("".join(special for special, _ in _IN_ORDER)) + "]")
NULL = "\\N"
BUFFER_LINES = 1000


def text_value(value: str | datetime.datetime | None) -> str:
    """One value in COPY's text format (NULL, an ISO time, or text with its special characters escaped)."""
    if value is None:
        return NULL
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def text_column(values: Sequence[str]) -> list[str]:
    """``text_value`` of every string in a column, escaped in a few passes over the whole column at once."""
    joined = "\0".join(values)
    if joined.count("\0") != max(len(values) - 1, 0):
        return [text_value(value) for value in values]
    for special, escaped in _IN_ORDER:
        if special in joined:
            joined = joined.replace(special, escaped)
    return joined.split("\0") if values else []


def _statement(model: type[models.Model], fields: Sequence[str]) -> str:
    columns = {field.name: str(field.column) for field in model._meta.concrete_fields}
    names = ", ".join(connection.ops.quote_name(columns[name]) for name in fields)
    return f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"


def copy_lines(model: type[models.Model], fields: Sequence[str], lines: Iterable[str]) -> None:
    """COPY rows already written as text lines (tab-separated values built with ``text_value``, ending in a newline).

    For the largest batches: building the line in Python costs less than the driver adapting each value.
    """

    def chunks() -> Iterator[str]:
        buffered: list[str] = []
        for line in lines:
            buffered.append(line)
            if len(buffered) >= BUFFER_LINES:
                yield "".join(buffered)
                buffered = []
        yield "".join(buffered)

    copy_text(model, fields, chunks())


def copy_text(model: type[models.Model], fields: Sequence[str], chunks: Iterable[str]) -> None:
    """COPY rows already written as chunks of text lines, each chunk whole lines; for streams of large chunks."""
    with connection.cursor() as cursor, cursor.cursor.copy(_statement(model, fields)) as copy:
        for chunk in chunks:
            if chunk:
                copy.write(chunk)


def copy_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """COPY rows given as value tuples, adapted by the driver."""
    with connection.cursor() as cursor, cursor.cursor.copy(_statement(model, fields)) as copy:
        for row in rows:
            copy.write_row(row)
