"""The application's PostgreSQL role: what the services need, and nothing that rewrites history.

Migrations run as the role that owns the tables (``DATABASE_MIGRATE_URL``). The web and worker
processes connect as another role (``DATABASE_URL``) that owns nothing and, table by table, holds:

- the evidence (audit events, checkpoints and every other audit table, approvals with their
  signatures, deployments, reported dataset digests): SELECT and INSERT, so a row once written
  stays as written;
- the chain and the bookkeeping rows that legitimately change (a release's state, a dataset
  version's status, sync state, write-backs, ...): SELECT, INSERT and UPDATE, and on a model with
  ``immutable_fields`` UPDATE of its other columns only, so a dataset's hash or a release's model
  version cannot be rewritten even with the triggers out of the way. No DELETE: versions and
  releases are retired, never deleted;
- DELETE only where the services remove rows: a run's dataset inputs when MLflow reports new ones,
  group memberships, sessions, the lockout's wrong-password counts;
- never TRUNCATE, TRIGGER or REFERENCES, no ownership, no CREATE in the schema, no way to set
  ``session_replication_role``.

``apply`` (run by the owner after every migrate, and by ``manage.py grant_app_role``) revokes and
grants in one transaction, so it can be run any number of times; ``problems`` names whatever would
still let the role change history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

log = logging.getLogger(__name__)

APPEND = ("SELECT", "INSERT")
CHANGE = ("SELECT", "INSERT", "UPDATE")
FULL = ("SELECT", "INSERT", "UPDATE", "DELETE")
# A queue's rows are added, then removed once served; never changed.
QUEUE = ("SELECT", "INSERT", "DELETE")

# Models not named here (a table added later) get APPEND: the safe side, widened here on purpose.
POLICY: dict[str, tuple[str, ...]] = {
    "audit.AuditEvent": APPEND,
    "audit.Checkpoint": APPEND,
    "releases.Approval": APPEND,
    "releases.Deployment": APPEND,
    "releases.EndpointModel": APPEND,
    "releases.DatasetDigest": APPEND,
    "releases.WebhookAttempt": APPEND,
    "releases.Release": CHANGE,
    "releases.DatasetVersion": CHANGE,
    "releases.ModelVersion": CHANGE,
    "releases.Commit": CHANGE,
    "releases.GitTag": CHANGE,
    "releases.Dataset": CHANGE,
    "releases.FeaturePipeline": CHANGE,
    "releases.FeaturePipelineVersion": CHANGE,
    "releases.TrackingServer": CHANGE,
    "releases.ExperimentRun": CHANGE,
    "releases.RegisteredModel": CHANGE,
    "releases.Endpoint": CHANGE,
    "releases.GitRepository": CHANGE,
    "releases.ApiToken": CHANGE,
    "releases.SyncState": CHANGE,
    "releases.SyncedRun": CHANGE,
    "releases.WriteBack": CHANGE,
    # Webhook deliveries waiting for a sync, deleted when one serves them (releases/sync/mlflow.py).
    "releases.SyncRequest": QUEUE,
    "releases.WebhookSubscription": CHANGE,
    # A period bundle being prepared: the worker moves its state and progress, and expiry empties its file.
    "releases.EvidenceExport": CHANGE,
    # A delivery's status and attempt count change as it is retried (its attempts are appended, above).
    "releases.WebhookDelivery": CHANGE,
    # services.record_runs replaces a run's inputs when MLflow reports different ones.
    "releases.RunDatasetInput": FULL,
    # Kept equal to the inputs of each model version's run, so replaced with them.
    "releases.ModelVersionDataset": FULL,
    # Added as deployments are recorded; removed when a run's new inputs no longer reach an endpoint.
    "releases.DatasetVersionEndpoint": QUEUE,
    # Django's own: people, roles and sessions are managed through the app (grant --revoke, logout).
    "auth.User": FULL,
    "auth.Group": FULL,
    "auth.User_groups": FULL,
    "auth.User_user_permissions": FULL,
    "auth.Group_permissions": FULL,
    "sessions.Session": FULL,
    # The lockout's wrong-password counts (django-axes): cleared on success, on unlock and after the cool-off.
    "axes.AccessAttempt": FULL,
    "axes.AccessAttemptExpiration": FULL,
    "axes.AccessFailureLog": FULL,
    "auth.Permission": APPEND,
    "contenttypes.ContentType": APPEND,
    "admin.LogEntry": APPEND,
}
# Tables with no model: the app reads which migrations ran, never records one.
EXTRA_TABLES: dict[str, tuple[str, ...]] = {"django_migrations": ("SELECT",)}


@dataclass(frozen=True)
class TableGrant:
    table: str
    privileges: tuple[str, ...]
    # UPDATE limited to these columns (a model's mutable ones); None means UPDATE of the whole row.
    update_columns: tuple[str, ...] | None = None

    def describe(self) -> str:
        words = [
            f"UPDATE ({', '.join(self.update_columns)})" if p == "UPDATE" and self.update_columns is not None else p
            for p in self.privileges
        ]
        return f"{self.table}: {', '.join(words)}"


def table_grants() -> list[TableGrant]:
    """What the application's role holds on each table, from POLICY and each model's ``immutable_fields``."""
    found: list[TableGrant] = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        privileges = POLICY.get(meta.label, APPEND)
        immutable = getattr(model, "immutable_fields", ())
        columns: tuple[str, ...] | None = None
        if "UPDATE" in privileges and immutable:
            fixed = {meta.get_field(name).column for name in immutable}  # type: ignore[union-attr]
            columns = tuple(
                str(field.column)
                for field in meta.concrete_fields
                if not field.primary_key and field.column not in fixed
            )
        found.append(TableGrant(meta.db_table, privileges, columns))
    found.extend(TableGrant(table, privileges) for table, privileges in EXTRA_TABLES.items())
    return sorted(found, key=lambda grant: grant.table)


def apply(connection: BaseDatabaseWrapper, role: str) -> list[TableGrant]:
    """Give ``role`` exactly its privileges in the connection's schema. Run as the tables' owner."""
    quote = connection.ops.quote_name
    who = quote(role)
    grants = table_grants()
    # One transaction: sessions of the running app never see the role between REVOKE and GRANT.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = quote(cursor.fetchone()[0])
        statements = [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {who}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {who}",
            f"GRANT USAGE ON SCHEMA {schema} TO {who}",
        ]
        existing = set(connection.introspection.table_names(cursor))
        for grant in grants:
            if grant.table not in existing:
                continue
            whole = [p for p in grant.privileges if not (p == "UPDATE" and grant.update_columns is not None)]
            statements.append(f"GRANT {', '.join(whole)} ON {quote(grant.table)} TO {who}")
            if "UPDATE" in grant.privileges and grant.update_columns:
                columns = ", ".join(quote(column) for column in grant.update_columns)
                statements.append(f"GRANT UPDATE ({columns}) ON {quote(grant.table)} TO {who}")
        # INSERT draws ids from the tables' sequences; USAGE allows nextval, not setval.
        statements.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")
        for statement in statements:
            cursor.execute(statement)
    return [grant for grant in grants if grant.table in existing]


def problems(connection: BaseDatabaseWrapper, role: str) -> list[str]:
    """What would still let ``role`` change history, in plain words; empty when it holds only its grants."""
    found: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls, oid FROM pg_catalog.pg_roles WHERE rolname = %s", [role]
        )
        row = cursor.fetchone()
        if row is None:
            return [f"role {role} does not exist"]
        superuser, createrole, bypassrls, oid = row
        if superuser:
            found.append(f"{role} is a superuser: it can switch every trigger off")
        if createrole:
            found.append(f"{role} can create roles")
        if bypassrls:
            found.append(f"{role} bypasses row-level security")
        cursor.execute(
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles o ON o.oid = c.relowner "
            "WHERE c.relnamespace = current_schema()::regnamespace AND pg_catalog.pg_has_role(%s, o.oid, 'USAGE') "
            "ORDER BY 1",
            [oid],
        )
        owned = [name for (name,) in cursor.fetchall()]
        if owned:
            found.append(
                f"{role} owns (or acts as the owner of) {', '.join(owned[:5])}{' ...' if len(owned) > 5 else ''}"
            )
        cursor.execute("SELECT pg_catalog.has_schema_privilege(%s, current_schema(), 'CREATE')", [role])
        if cursor.fetchone()[0]:
            found.append(f"{role} can create objects in the schema (REVOKE CREATE ON SCHEMA ... FROM PUBLIC)")
        # Before PostgreSQL 15 only superusers could set it, and that is checked above.
        if connection.pg_version >= 150000:  # type: ignore[attr-defined]
            cursor.execute("SELECT pg_catalog.has_parameter_privilege(%s, 'session_replication_role', 'SET')", [role])
            if cursor.fetchone()[0]:
                found.append(f"{role} may set session_replication_role, which switches triggers off")
        for grant in table_grants():
            cursor.execute("SELECT pg_catalog.to_regclass(%s)::oid", [grant.table])
            table = cursor.fetchone()[0]
            if table is None:
                continue
            for privilege in ("DELETE", "TRUNCATE", "TRIGGER", "REFERENCES", "UPDATE"):
                if privilege in grant.privileges and not (privilege == "UPDATE" and grant.update_columns is not None):
                    continue
                cursor.execute("SELECT pg_catalog.has_table_privilege(%s, %s, %s)", [role, table, privilege])
                if cursor.fetchone()[0]:
                    found.append(f"{role} has {privilege} on {grant.table}")
            if grant.update_columns is not None:
                cursor.execute(
                    "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
                    "AND NOT a.attisdropped AND pg_catalog.has_column_privilege(%s, %s, a.attnum, 'UPDATE') "
                    "AND NOT a.attname = ANY(%s) ORDER BY a.attnum",
                    [table, role, table, list(grant.update_columns)],
                )
                fixed = [name for (name,) in cursor.fetchall()]
                if fixed:
                    found.append(f"{role} may UPDATE {grant.table} ({', '.join(fixed)}), which never change")
    return found


def grant_after_migrate(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: when migrate ran as the owner, give the application's role its privileges."""
    role = getattr(settings, "LINEAGE_DB_APP_ROLE", "")
    connection = connections[using]
    if not role or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == role:
            return
    granted = apply(connection, role)
    log.info("granted %s its privileges on %d tables", role, len(granted))
    found = problems(connection, role)
    if found:
        raise ImproperlyConfigured(f"the application's database role is not least-privileged: {'; '.join(found)}")
