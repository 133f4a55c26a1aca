"""PostgreSQL COPY for bulk writes: tens of thousands of rows in the time INSERT ... VALUES takes for a few
thousand. Generic plumbing under the models: it knows COPY's text format, nothing of the domain.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from django.db import connection, models

# COPY's text format: a backslash, tab, newline or carriage return inside a value must be escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
NULL = "\\N"
BUFFER_LINES = 1000


def text_value(value: str | datetime.datetime | None) -> str:
    """One value in COPY's text format (NULL, an ISO time, or text with its special characters escaped)."""
    if value is None:
        return NULL
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def _statement(model: type[models.Model], fields: Sequence[str]) -> str:
    columns = {field.name: str(field.column) for field in model._meta.concrete_fields}
    names = ", ".join(connection.ops.quote_name(columns[name]) for name in fields)
    return f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"


def copy_lines(model: type[models.Model], fields: Sequence[str], lines: Iterable[str]) -> None:
    """COPY rows already written as text lines (tab-separated values built with ``text_value``, ending in a newline).

    For the largest batches: building the line in Python costs less than the driver adapting each value.
    """
    with connection.cursor() as cursor, cursor.cursor.copy(_statement(model, fields)) as copy:
        buffered: list[str] = []
        for line in lines:
            buffered.append(line)
            if len(buffered) >= BUFFER_LINES:
                copy.write("".join(buffered))
                buffered = []
        if buffered:
            copy.write("".join(buffered))


def copy_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """COPY rows given as value tuples, adapted by the driver."""
    with connection.cursor() as cursor, cursor.cursor.copy(_statement(model, fields)) as copy:
        for row in rows:
            copy.write_row(row)
