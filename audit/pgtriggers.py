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


def reference_checked(name: str, *, column: str, referenced_table: str) -> Trigger:
    """A foreign key on ``column`` checked once per INSERT statement, for a table loaded by COPY by the ten
    thousand rows: PostgreSQL's own constraint looks the referenced row up once per row (a third of such a
    load), this once per statement for every row it inserted. Pair it with ``referenced_kept`` on the
    referenced table, and keep ``column`` read-only.

    As the constraint does, it locks the referenced rows (FOR KEY SHARE) until the transaction ends, so a
    concurrent delete waits and then sees the new rows.
    """
    return Trigger(
        name=name,
        operation=pgtrigger.Insert,
        level=pgtrigger.Statement,
        when=pgtrigger.After,
        referencing=pgtrigger.Referencing(new="inserted"),
        declare=[("wanted", "bigint"), ("present", "bigint")],
        func=f"""
            SELECT count(DISTINCT {column}) INTO wanted FROM inserted;
            SELECT count(*) INTO present FROM (
                SELECT 1 FROM {referenced_table} r WHERE r.id IN (SELECT {column} FROM inserted) FOR KEY SHARE OF r
            ) locked;
            IF present <> wanted THEN
                RAISE EXCEPTION 'insert on table "%" violates its reference to "{referenced_table}"', TG_TABLE_NAME
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        """,  # noqa: S608 - table and column names given by the models
    )


def referenced_kept(name: str, *, referencing_table: str, column: str) -> Trigger:
    """The other half of ``reference_checked``: a row ``referencing_table.column`` still names can be neither
    deleted nor given another id."""
    return Trigger(
        name=name,
        operation=pgtrigger.Update | pgtrigger.Delete,
        when=pgtrigger.Before,
        func=f"""
            IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
                AND EXISTS (SELECT 1 FROM {referencing_table} WHERE {column} = OLD.id) THEN
                RAISE EXCEPTION 'row % of "%" is still referenced from "{referencing_table}"', OLD.id, TG_TABLE_NAME
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        """,  # noqa: S608 - table and column names given by the models
    )
