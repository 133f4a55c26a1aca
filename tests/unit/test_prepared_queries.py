"""A prepared query gives what its queryset gives, for any values, and refuses a shape it cannot prepare."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, connections
from django.db.models import BooleanField, Count, Expression, F, Min, Value

from releases.lineage import live
from releases.models import Deployment, Release
from releases.prepared import PreparedQuery, PreparedTuples, TextList
from tests.plans import plans_while_generic_plans_are_preferred

BY_NAME = PreparedQuery(lambda name: Release.objects.with_chain().filter(name=name), name=str)
LIVE_OF = PreparedQuery(
    lambda release: Deployment.objects.select_related("endpoint").filter(release_id=release, kind="deploy"),
    release=int,
)


def _chain(release: Release) -> tuple[str, str, str]:
    return release.model_version.key, release.model_version.run.server.name, release.created_by.username


def test_rows_are_the_querysets_rows_for_each_value(story, django_assert_num_queries):
    for name in ("churn-v40", "churn-v42", "no-such-release"):
        expected = list(Release.objects.with_chain().filter(name=name))
        with django_assert_num_queries(1):
            found = BY_NAME.all(name=name)
            # select_related links come loaded, as the queryset loads them.
            chains = [_chain(r) for r in found]
        assert [r.pk for r in found] == [r.pk for r in expected]
        assert [r.__dict__.keys() for r in found] == [r.__dict__.keys() for r in expected]
        assert chains == [
            (r.model_version.key, r.model_version.run.server.name, r.created_by.username) for r in expected
        ]
        assert [r.created_at for r in found] == [r.created_at for r in expected]


def test_raw_rows_are_kept_apart_by_column_and_built_later_as_all_builds_them(story, django_assert_num_queries):
    ids = list(Deployment.objects.order_by("pk").values_list("pk", flat=True))
    with django_assert_num_queries(1):
        rows = WITH_NEXT.rows(ids=ids)
    # Plain driver values, before any conversion or instance: what a later read is compared with.
    assert all(type(row) is tuple for row in rows)
    assert rows.using == "default"
    release_at = WITH_NEXT.column("release_id")
    assert WITH_NEXT.column("id") != release_at
    assert [row[release_at] for row in rows] == [d.release_id for d in WITH_NEXT.all(ids=ids)]
    with pytest.raises(ValueError, match="is not in list"):
        WITH_NEXT.column("no_such_column")

    some = rows.some(row for row in rows if row[release_at] == story["v41"].pk)
    assert some.using == rows.using
    assert 0 < len(some) < len(rows)
    with django_assert_num_queries(0):
        built = WITH_NEXT.instances(some)
        names = [(d.release.name, d.release_name, d.deployed_on) for d in built]
    expected = [d for d in WITH_NEXT.all(ids=ids) if d.release_id == story["v41"].pk]
    assert [d.pk for d in built] == [d.pk for d in expected]
    assert names == [(d.release.name, d.release_name, d.deployed_on) for d in expected]
    assert [d.deployed_at for d in built] == [d.deployed_at for d in expected]
    assert WITH_NEXT.instances(rows.some([])) == []


def test_fixed_values_of_the_queryset_stay(story):
    release = story["v41"]
    assert [d.pk for d in LIVE_OF.all(release=release.pk)] == [
        d.pk for d in Deployment.objects.filter(release=release, kind="deploy")
    ]
    assert LIVE_OF.first(release=-5) is None


def test_a_shape_it_cannot_prepare_is_refused(db):
    unused = PreparedQuery(lambda name: Release.objects.all(), name=str)
    with pytest.raises(TypeError, match="does not use name"):
        unused.all(name="churn-v1")
    prefetching = PreparedQuery(lambda name: Release.objects.filter(name=name).prefetch_related("approvals"), name=str)
    with pytest.raises(TypeError, match="no prefetch"):
        prefetching.all(name="churn-v1")
    with pytest.raises(TypeError, match="takes name"):
        BY_NAME.all(release="churn-v1")


# A list of ids as one value (any_of), and annotations -------------------------------------------------

WITH_NEXT = PreparedQuery(
    lambda ids: (
        Deployment.objects.select_related("release")
        .filter(pk__any_of=ids)
        .annotate(release_name=F("release__name"), deployed_on=F("endpoint__name"))
        .order_by("pk")
    ),
    ids=list,
)


def test_any_of_finds_what_in_finds_for_every_length(story):
    ids = sorted(Release.objects.values_list("pk", flat=True))
    for chosen in ([], ids[:1], ids[:2], ids, [*ids, 10**12]):
        assert sorted(Release.objects.filter(pk__any_of=chosen).values_list("pk", flat=True)) == sorted(
            Release.objects.filter(pk__in=chosen).values_list("pk", flat=True)
        )
    # On a foreign key too.
    expected = sorted(Deployment.objects.filter(release_id__in=ids[:2]).values_list("pk", flat=True))
    assert sorted(Deployment.objects.filter(release_id__any_of=ids[:2]).values_list("pk", flat=True)) == expected


def test_any_of_sends_the_ids_as_one_parameter_whatever_their_number(story):
    ids = list(Release.objects.values_list("pk", flat=True))
    one, all_of_them = (str(Release.objects.filter(pk__any_of=chosen).query) for chosen in (ids[:1], ids))
    sql = [Release.objects.filter(pk__any_of=chosen).query.sql_with_params()[0] for chosen in (ids[:1], ids, [])]
    assert len(set(sql)) == 1, sql
    assert one != all_of_them, "the values themselves differ"


def test_any_of_takes_whole_numbers_only(db):
    for wrong in (["1"], [1.0], [True]):
        with pytest.raises(TypeError, match="whole numbers"):
            Release.objects.filter(pk__any_of=wrong)


def test_a_prepared_list_and_its_annotations_are_what_the_queryset_gives(story, django_assert_num_queries):
    ids = list(Deployment.objects.order_by("pk").values_list("pk", flat=True))
    for chosen in (ids[:1], ids[1:3], ids, []):
        expected = list(
            Deployment.objects.select_related("release")
            .filter(pk__in=chosen)
            .annotate(release_name=F("release__name"), deployed_on=F("endpoint__name"))
            .order_by("pk")
        )
        with django_assert_num_queries(1):
            found = WITH_NEXT.all(ids=chosen)
            names = [(d.release.name, d.release_name, d.deployed_on) for d in found]
        assert [d.pk for d in found] == [d.pk for d in expected]
        assert names == [(d.release.name, d.release_name, d.deployed_on) for d in expected]
    assert all(d.release_name == d.release.name for d in WITH_NEXT.all(ids=ids))


def test_a_prepared_query_refuses_rows_it_cannot_build(db):
    as_values = PreparedQuery(lambda name: Release.objects.filter(name=name).values("pk"), name=str)
    with pytest.raises(TypeError, match=r"no values.*PreparedTuples"):
        as_values.all(name="churn-v1")
    deferred = PreparedQuery(lambda name: Release.objects.filter(name=name).only("name"), name=str)
    with pytest.raises(TypeError, match="whole rows"):
        deferred.all(name="churn-v1")


def test_a_setting_read_when_the_query_is_built_is_read_again_when_it_changes(story, settings):
    # The build reads a setting, as the rollback target's query reads the signers an approval needs: a changed
    # setting (in tests; settings do not change while a process runs) compiles the query again.
    settings.LINEAGE_REQUIRED_APPROVALS = 1
    by_setting = PreparedQuery(
        lambda ids: Release.objects.filter(pk__any_of=ids).exclude(
            name=f"churn-v{39 + settings.LINEAGE_REQUIRED_APPROVALS}"
        ),
        ids=list,
    )
    ids = sorted(Release.objects.values_list("pk", flat=True))
    assert sorted(r.name for r in by_setting.all(ids=ids)) == ["churn-v41", "churn-v42"]

    settings.LINEAGE_REQUIRED_APPROVALS = 2

    assert sorted(r.name for r in by_setting.all(ids=ids)) == ["churn-v40", "churn-v42"]


# The queryset's constants as literals (PostgreSQL) ----------------------------------------------------------

ODD_TEXT = "50% 'off' \\ %s %%"
BY_STATE_WITH_TEXT = PreparedQuery(
    lambda ids: Release.objects.filter(pk__any_of=ids, state=Release.State.APPROVED).annotate(odd=Value(ODD_TEXT)),
    ids=list,
)


def test_constants_are_written_into_the_sql_and_the_callers_values_stay_parameters(postgres, story):
    ids = sorted(Release.objects.values_list("pk", flat=True))
    found = BY_STATE_WITH_TEXT.all(ids=ids)
    compiled = BY_STATE_WITH_TEXT.compiled(connections["default"])

    assert [name for name, _ in compiled.params] == ["ids"], "only the caller's list is a parameter"
    # The state's text (not its enum's name), and the odd text quoted with its percent signs doubled, so that
    # the one placeholder psycopg fills is the ids'.
    assert "= 'approved'" in compiled.sql
    assert "''off''" in compiled.sql
    assert "%%s %%%%" in compiled.sql
    assert compiled.sql.replace("%%", "").count("%s") == 1
    expected = Release.objects.filter(pk__in=ids, state=Release.State.APPROVED)
    assert sorted(r.pk for r in found) == sorted(r.pk for r in expected) != []
    # The text comes back as it was written.
    assert {r.odd for r in found} == {ODD_TEXT}


def test_the_rollback_targets_one_plan_for_any_value_knows_the_state_it_looks_for(postgres, story):
    """With the state an unknown parameter, PostgreSQL's one plan for any value sorted every deployment of the
    endpoint to find the newest approved (12 ms a board on the large set); with the state written in, it walks
    the endpoint's newest first (2 ms). The ids of the live deployments stay the one parameter."""
    statuses = []
    planned = plans_while_generic_plans_are_preferred(
        lambda: statuses.append(live.endpoint_statuses()), times=6, like="%releases_deployment%rollback_release%"
    )
    assert planned, "the rollback target's statement is prepared, as every statement run often is"
    # Planned once for any ids, and still finding the newest approved release before the live one.
    assert any(generic > 0 for generic, _ in planned.values()), planned
    assert statuses[-1][0].rollback_target == story["v41"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%rollback_release%"])
        (statement,) = cursor.fetchone()
    assert "= 'approved'" in statement
    assert "$1" in statement


# Tuples: values_list(), its aggregates and unions -------------------------------------------------------------

PER_ENDPOINT = PreparedTuples(
    lambda ids: (
        Deployment.objects.filter(release_id__any_of=ids)
        .values_list("endpoint__name")
        .annotate(times=Count("id"), first=Min("deployed_at"))
        .order_by("endpoint__name")
    ),
    ids=list,
)
STATES = PreparedTuples(
    # Releases are ordered by default; the parts of a union cannot be (SQLite).
    lambda name: (
        Release.objects.filter(name=name)
        .order_by()
        .values_list("pk", Value("named"))
        .union(
            Release.objects.filter(state=Release.State.APPROVED).order_by().values_list("pk", Value("approved")),
            all=True,
        )
    ),
    name=str,
)


def test_prepared_tuples_are_what_values_list_gives_aggregated_or_united(story, django_assert_num_queries):
    ids = sorted(Release.objects.values_list("pk", flat=True))
    for chosen in ([], ids[:1], ids):
        # What the same queryset gives when Django runs it.
        expected = list(PER_ENDPOINT.build(ids=chosen))
        with django_assert_num_queries(1):
            found = PER_ENDPOINT.all(ids=chosen)
        assert found == expected
    assert [times for _, times, _ in PER_ENDPOINT.all(ids=ids)] == [3], "the story's three went to one endpoint"
    for name in ("churn-v41", "no-such-release"):
        approved = Release.objects.filter(state=Release.State.APPROVED).order_by().values_list("pk", Value("approved"))
        expected_union = list(
            Release.objects.filter(name=name).order_by().values_list("pk", Value("named")).union(approved, all=True)
        )
        assert sorted(STATES.all(name=name)) == sorted(expected_union) != []


def test_prepared_tuples_take_values_list_only(db):
    for shape in (
        lambda name: Release.objects.filter(name=name),
        lambda name: Release.objects.filter(name=name).values("pk"),
        lambda name: Release.objects.filter(name=name).values_list("pk", flat=True),
        lambda name: Release.objects.filter(name=name).values_list("pk", named=True),
    ):
        with pytest.raises(TypeError, match="come from values_list"):
            PreparedTuples(shape, name=str).all(name="churn-v1")
    with pytest.raises(TypeError, match="no prefetch"):
        PreparedTuples(
            lambda name: Release.objects.filter(name=name).values_list("pk").prefetch_related("approvals"), name=str
        ).all(name="churn-v1")


class NamedOneOf(Expression):
    """A release named one of ``names``, the list sent as one parameter (as a release's timeline sends its keys)."""

    conditional = True

    def __init__(self, names: list[str]) -> None:
        super().__init__(output_field=BooleanField())
        self.names = TextList.checked(names)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "name = ANY(%s::text[])", [self.names]

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "name IN (SELECT value FROM json_each(%s))", [self.names]


NAMED = PreparedQuery(lambda names: Release.objects.filter(NamedOneOf(names)).order_by("pk"), names=TextList)


def test_a_prepared_list_of_texts_is_one_parameter_whatever_its_length(story, django_assert_num_queries):
    names = list(Release.objects.order_by("pk").values_list("name", flat=True))
    for chosen in ([], names[:1], names[1:], [*names, "no-such-release", "it's 100% \\ odd"]):
        with django_assert_num_queries(1):
            found = NAMED.all(names=chosen)
        assert found == list(Release.objects.filter(name__in=chosen).order_by("pk"))
        assert found == list(NAMED.build(names=chosen))
    assert len(NAMED.all(names=names)) == len(names) > 1


def test_a_prepared_list_of_texts_takes_texts_only(db):
    for wrong in ([1], [None], ["churn-v1", b"churn-v2"]):
        with pytest.raises(TypeError, match="TextList takes texts only"):
            NAMED.all(names=wrong)
    with pytest.raises(TypeError, match="IdList takes whole numbers only"):
        PER_ENDPOINT.all(ids=["1"])
