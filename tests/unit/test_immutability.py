"""Immutable versions: idempotent re-registration, refusal of different content, DB-level protection."""

from __future__ import annotations

import re

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from releases import services
from releases.errors import Conflict
from releases.models import DatasetVersion, Deployment, ImmutableFieldError, ModelVersion, Release
from tests.factories import SYSTEM, World, content_hash

HASH_17 = content_hash("churn-train:17")


def _register(**overrides: object) -> tuple[DatasetVersion, bool]:
    values: dict[str, object] = {
        "name": "churn-train",
        "version": 17,
        "uri": "s3://data/churn-train/17.parquet",
        "content_hash": HASH_17,
        "by": SYSTEM,
    }
    values.update(overrides)
    return services.register_dataset_version(**values)  # type: ignore[arg-type]


@pytest.mark.django_db
def test_registering_a_dataset_version_records_it_and_its_audit_event():
    version, created = _register(size_bytes=1024)
    assert created
    version.refresh_from_db()
    assert (version.key, version.content_hash, version.size_bytes, version.status) == (
        "churn-train:17",
        HASH_17,
        1024,
        "active",
    )
    event = AuditEvent.objects.get(action="dataset_version.registered")
    assert event.object_key == "churn-train:17"
    assert event.new["content_hash"] == HASH_17
    assert event.actor == "test-setup"


@pytest.mark.django_db
def test_registering_the_same_content_again_is_a_no_op():
    first, _ = _register()
    events = AuditEvent.objects.count()
    again, created = _register()
    assert not created
    assert again.pk == first.pk
    assert DatasetVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_registering_different_content_is_refused_naming_the_conflict():
    _register()
    with pytest.raises(Conflict) as refused:
        _register(content_hash=content_hash("something else"))
    assert str(refused.value) == f"churn-train:17 is already registered with {HASH_17}; register a new version"
    assert DatasetVersion.objects.get().content_hash == HASH_17


@pytest.mark.django_db
def test_registering_at_a_different_uri_is_refused():
    _register()
    with pytest.raises(Conflict, match=re.escape("already registered at s3://data/churn-train/17.parquet")):
        _register(uri="s3://elsewhere/17.parquet")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 0}, "positive integer"),
        ({"version": 2**31}, "positive integer up to 2147483647"),
        ({"size_bytes": 2**63}, "whole number of bytes up to 9223372036854775807"),
        ({"content_hash": "md5:abc"}, "sha256:<64 lowercase hex>"),
        ({"name": "bad name!"}, "dataset name"),
        ({"uri": "  "}, "needs a uri"),
    ],
)
def test_malformed_dataset_versions_are_refused_before_anything_is_written(overrides, message):
    from releases.errors import InvalidInput

    with pytest.raises(InvalidInput, match=message):
        _register(**overrides)
    assert not DatasetVersion.objects.exists()
    # The only row written is the evidence of the refused attempt.
    [event] = AuditEvent.objects.all()
    assert (event.action, event.new["rule"]) == ("dataset_version.registration_refused", "invalid")
    assert message in event.reason


@pytest.mark.django_db
def test_model_layer_refuses_to_change_an_immutable_column():
    version, _ = _register()
    version.content_hash = content_hash("rewritten")
    with pytest.raises(ImmutableFieldError, match="content_hash cannot change"):
        version.save()
    version.refresh_from_db()
    assert version.content_hash == HASH_17


@pytest.mark.django_db
def test_model_version_artifact_cannot_be_rewritten(ci_account, lead):
    world = World.create()
    mv = world.model_version("churn-model/42")
    mv.artifact_uri = "s3://swapped"
    with pytest.raises(ImmutableFieldError):
        mv.save()
    with pytest.raises(Conflict, match="churn-model/42 is already registered with artifact_uri"):
        services.register_model_version(
            world.server,
            services.ModelVersionData(
                name="churn-model", version=42, source_run_id=mv.source_run_id, artifact_uri="s3://x"
            ),
            by=SYSTEM,
        )


@pytest.mark.django_db
def test_release_with_same_content_is_idempotent_and_different_content_refused(ci_account):
    world = World.create()
    mv42 = world.model_version("churn-model/42")
    mv43 = world.model_version("churn-model/43")
    first = world.release("churn-v42", mv42, by=ci_account)
    again, created = services.create_release(
        name="churn-v42", model_version="churn-model/42", validation_report_uri="s3://reports/r.html", by=ci_account
    )
    assert not created
    assert again.pk == first.pk
    with pytest.raises(Conflict, match="release churn-v42 already exists with model version 'churn-model/42'"):
        services.create_release(
            name="churn-v42", model_version=mv43.key, validation_report_uri="s3://reports/r.html", by=ci_account
        )
    assert Release.objects.count() == 1
    assert AuditEvent.objects.filter(action="release.created").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("releases_datasetversion", "content_hash", "'sha256:" + "0" * 64 + "'"),
        ("releases_datasetversion", "uri", "'s3://swapped'"),
        ("releases_modelversion", "artifact_uri", "'s3://swapped'"),
        ("releases_commit", "sha", "'" + "f" * 40 + "'"),
    ],
)
def test_postgres_trigger_refuses_raw_sql_rewrites(postgres, ci_account, table, column, value):
    world = World.create()
    world.model_version("churn-model/42", commit=world.commit("c1"), datasets=(world.dataset("churn-train:17").key,))
    # As the application's role the missing column privilege refuses first; as the owner, the trigger.
    with (
        pytest.raises(DatabaseError, match=r"Cannot update rows|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE {table} SET {column} = {value}")  # noqa: S608 - fixed test values


@pytest.mark.django_db(transaction=True)
def test_postgres_trigger_refuses_queryset_update(postgres, ci_account):
    world = World.create()
    mv = world.model_version("churn-model/42")
    world.release("churn-v42", mv, by=ci_account)
    world.dataset("churn-train:17")
    with pytest.raises(DatabaseError), transaction.atomic():
        DatasetVersion.objects.update(content_hash="sha256:" + "1" * 64)
    with pytest.raises(DatabaseError), transaction.atomic():
        ModelVersion.objects.update(artifact_uri="s3://swapped")
    with pytest.raises(DatabaseError), transaction.atomic():
        Release.objects.update(validation_report_uri="s3://swapped")
    assert DatasetVersion.objects.get().content_hash == content_hash("churn-train:17")
    assert Release.objects.get().validation_report_uri == "s3://reports/r.html"


@pytest.mark.django_db(transaction=True)
def test_postgres_trigger_keeps_deployments_append_only(postgres, ci_account, lead, release_manager):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead)
    world.deploy(world.endpoint(), release, by=release_manager)
    with pytest.raises(DatabaseError), transaction.atomic():
        Deployment.objects.update(reason="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM releases_deployment")
    assert Deployment.objects.count() == 1
