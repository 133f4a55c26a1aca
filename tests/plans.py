"""How PostgreSQL planned the statements a piece of code ran many times, for the tests of
``releases.prepared.planned_for_their_values``."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection


def _prepared(like: str) -> dict[str, tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s", [like]
        )
        return {name: (generic, custom) for name, generic, custom in cursor.fetchall()}


def plans_while_generic_plans_are_preferred(
    run: Callable[[], object], *, times: int, like: str
) -> dict[str, tuple[int, int]]:
    """Run ``run`` ``times`` times on a connection that prefers generic plans, as PostgreSQL may decide by
    itself after five runs of a prepared statement; the (generic, custom) plans then made for each prepared
    statement whose text is ``like`` (an SQL LIKE pattern)."""
    before = _prepared(like)
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for _ in range(times):
                run()
        finally:
            cursor.execute("RESET plan_cache_mode")
    return {
        name: (generic - before.get(name, (0, 0))[0], custom - before.get(name, (0, 0))[1])
        for name, (generic, custom) in _prepared(like).items()
    }
