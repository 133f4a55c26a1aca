"""A prepared query gives what its queryset gives, for any values, and refuses a shape it cannot prepare."""

from __future__ import annotations

import pytest

from releases.models import Deployment, Release
from releases.prepared import PreparedQuery

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
