"""django-pgtrigger's protective triggers without the switch that let the application turn them off.

pgtrigger skips a trigger when the session variable ``pgtrigger.ignore`` names it
(``SET LOCAL pgtrigger.ignore = '{...}'``, or ``pgtrigger.ignore()`` in Python), and any role may set
a session variable: the application's own database role could switch off the very triggers meant to
hold against it. The triggers built here honour ``pgtrigger.ignore`` only for a role holding the
table owner's privileges, who could drop the trigger anyway (the test runner's flush is one); for
the application's role, which owns nothing, the variable changes nothing.

Generic plumbing under the models, like ``pgcopy``: it knows PostgreSQL and pgtrigger, not the domain.
Migrations refer to ``OwnerOnlyIgnoreSql`` by path: keep its name and its template stable.
"""

from __future__ import annotations

from typing import Any

import pgtrigger
from pgtrigger import compiler

UPDATE_OR_DELETE = pgtrigger.Update | pgtrigger.Delete
DELETE = pgtrigger.Delete


class OwnerOnlyIgnoreSql(compiler.UpsertTriggerSql):
    """pgtrigger's installation SQL (template v1), with the ignore check limited to the table's owner."""

    def get_template(self) -> str:
        # The first function is pgtrigger's own, unchanged (other pgtrigger triggers share it).
        return """
            CREATE OR REPLACE FUNCTION {ignore_func_name}(
                trigger_name NAME
            )
            RETURNS BOOLEAN AS $$
                DECLARE
                    _pgtrigger_ignore TEXT[];
                    _result BOOLEAN;
                BEGIN
                    BEGIN
                        SELECT INTO _pgtrigger_ignore
                            CURRENT_SETTING('pgtrigger.ignore');
                        EXCEPTION WHEN OTHERS THEN
                    END;
                    IF _pgtrigger_ignore IS NOT NULL THEN
                        SELECT trigger_name = ANY(_pgtrigger_ignore)
                        INTO _result;
                        RETURN _result;
                    ELSE
                        RETURN FALSE;
                    END IF;
                END;
            $$ LANGUAGE plpgsql;

            CREATE OR REPLACE FUNCTION {pgid}()
            RETURNS TRIGGER AS $$
                {declare}
                BEGIN
                    IF ({ignore_func_name}(TG_NAME) IS TRUE
                        AND pg_catalog.pg_has_role(
                            current_user,
                            (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID),
                            'USAGE'
                        )) THEN
                        IF (TG_OP = 'DELETE') THEN
                            RETURN OLD;
                        ELSE
                            RETURN NEW;
                        END IF;
                    END IF;
                    {func}
                END;
            $$ LANGUAGE plpgsql;

            DROP TRIGGER IF EXISTS {pgid} ON {table};
            CREATE {constraint} TRIGGER {pgid}
                {when} {operation} ON {table}
                {timing}
                {referencing}
                FOR EACH {level} {condition}
                EXECUTE PROCEDURE {execute};

            COMMENT ON TRIGGER {pgid} ON {table} IS '{hash}';
        """


class _OwnerOnlyIgnore(pgtrigger.Trigger):
    def compile(self, model: Any) -> compiler.Trigger:
        compiled = super().compile(model)
        return compiler.Trigger(name=compiled.name, sql=OwnerOnlyIgnoreSql(**compiled.sql.kwargs))


class Protect(_OwnerOnlyIgnore, pgtrigger.Protect):
    """pgtrigger.Protect that the application's role cannot switch off."""


class ReadOnly(_OwnerOnlyIgnore, pgtrigger.ReadOnly):
    """pgtrigger.ReadOnly that the application's role cannot switch off."""


class Trigger(_OwnerOnlyIgnore, pgtrigger.Trigger):
    """A free-form pgtrigger.Trigger that the application's role cannot switch off."""


def refuse_truncate(name: str, what: str) -> Trigger:
    """TRUNCATE empties a table without firing a row trigger: refuse it (only the owner can lift the refusal)."""
    return Trigger(
        name=name,
        operation=pgtrigger.Truncate,
        level=pgtrigger.Statement,
        when=pgtrigger.Before,
        func=f"RAISE EXCEPTION '{what}: TRUNCATE refused'; RETURN NULL;",
    )
