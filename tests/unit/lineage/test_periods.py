"""How long a release was live: its periods on each endpoint, from the deployment that made it live to the
one (often a rollback) that ended it."""

from __future__ import annotations

import datetime

from releases import services
from releases.lineage.periods import format_duration, release_periods
from releases.models import Deployment


def test_a_release_rolled_back_has_one_closed_period_ended_by_the_rollback(deployed_world, oncall):
    endpoint = deployed_world.endpoint("churn-scoring")
    rollback = services.roll_back(endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI)
    v42 = rollback.endpoint.deployments.get(release__name="churn-v42").release

    [period] = release_periods(v42)

    assert period.endpoint == "churn-scoring"
    assert period.started.release == v42
    assert period.ended == rollback
    assert (period.ended.kind, period.ended.release.name, period.ended.reason) == ("rollback", "churn-v41", "AUC alert")
    assert period.duration() == rollback.deployed_at - period.started.deployed_at
    document = period.as_dict()
    assert document["ended"]["kind"] == "rollback"
    assert document["live_now"] is False
    assert document["seconds"] == int(period.duration().total_seconds())


def test_a_release_live_now_has_an_open_period(deployed_world):
    v42 = Deployment.objects.get(release__name="churn-v42").release
    [period] = release_periods(v42)
    assert period.ended is None
    assert period.as_dict()["live_now"] is True


def test_periods_on_each_endpoint_and_a_redeployment_extends_one(world, ci_account, lead, release_manager, oncall):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    production, staging = world.endpoint("churn-scoring"), world.endpoint("churn-canary", "staging")
    world.deploy(staging, v42, by=release_manager, hours_ago=30)
    world.deploy(production, v41, by=release_manager, hours_ago=20)
    world.deploy(production, v42, by=release_manager, hours_ago=10)
    rollback = services.roll_back(production, by=oncall, reason="INC-7", source=Deployment.Source.UI)
    again = services.record_deployment(production, v42, by=release_manager, source=Deployment.Source.API)

    periods = release_periods(v42)
    assert [(p.endpoint, p.ended) for p in periods] == [
        ("churn-canary", None),
        ("churn-scoring", rollback),
        ("churn-scoring", None),
    ]
    assert periods[2].started == again

    first, restored = release_periods(v41)
    assert first.ended.release == v42
    assert (restored.started, restored.ended) == (rollback, again)


def test_a_redeployment_on_top_of_itself_extends_the_period(world, ci_account, lead, release_manager, oncall):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    production = world.endpoint("churn-scoring")
    world.deploy(production, v41, by=release_manager, hours_ago=20)
    world.deploy(production, v42, by=release_manager, hours_ago=10)
    rollback = services.roll_back(production, by=oncall, reason="INC-7", source=Deployment.Source.UI)
    services.record_deployment(production, v41, by=release_manager, source=Deployment.Source.API)
    later = services.record_deployment(production, v42, by=release_manager, source=Deployment.Source.API)

    _, restored = release_periods(v41)

    assert (restored.started, restored.ended) == (rollback, later)


def test_durations_read_as_people_say_them():
    assert format_duration(datetime.timedelta(days=3, hours=4, minutes=12)) == "3 d 4 h 12 min"
    assert format_duration(datetime.timedelta(hours=2, minutes=5, seconds=9)) == "2 h 5 min"
    assert format_duration(datetime.timedelta(seconds=40)) == "40 s"
    assert format_duration(datetime.timedelta(seconds=-5)) == "0 s"


def test_two_queries_whatever_the_history(world, ci_account, lead, release_manager, django_assert_num_queries):
    v41 = world.full_release(41, by=ci_account, approver=lead, dataset="churn-train:17")
    v42 = world.full_release(42, by=ci_account, approver=lead, dataset="churn-train:18")
    for name in ("a", "b", "c"):
        endpoint = world.endpoint(f"churn-{name}", "staging")
        world.deploy(endpoint, v41, by=release_manager, hours_ago=5)
        world.deploy(endpoint, v42, by=release_manager, hours_ago=3)
    with django_assert_num_queries(2):
        periods = release_periods(v41)
        assert [p.ended.release.name for p in periods] == ["churn-v42"] * 3


def test_the_evidence_bundle_says_how_long_a_release_was_live_and_what_ended_it(deployed_world, oncall, auditor):
    import io
    import json
    import zipfile

    from releases import evidence

    endpoint = deployed_world.endpoint("churn-scoring")
    rollback = services.roll_back(endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI)
    v42 = Deployment.objects.filter(release__name="churn-v42").first().release
    _, data = evidence.export_evidence(v42, by=auditor)
    bundle = zipfile.ZipFile(io.BytesIO(data))
    [period] = json.loads(bundle.read("periods.json"))
    assert period["endpoint"] == "churn-scoring"
    assert period["ended"] == {
        "release": "churn-v41",
        "kind": "rollback",
        "deployed_at": rollback.deployed_at.isoformat(),
        "actor": "oncall",
        "source": "ui",
        "reason": "AUC alert",
    }
    assert period["live_now"] is False
    # The rollback that ended it is among the bundle's proved events.
    events = json.loads(bundle.read("events.json"))
    assert any(
        e["fields"]["action"] == "deployment.rolled_back" and e["fields"]["new"]["release"] == "churn-v41"
        for e in events
    )
    report = bundle.read("report.html").decode()
    assert "How long it was live" in report
    assert "rollback to churn-v41 by oncall: AUC alert" in report


def test_the_release_timeline_and_its_audit_trail_keep_the_rollback_that_ended_it(deployed_world, oncall, auditor):
    from tests.unit.conftest import client_for

    endpoint = deployed_world.endpoint("churn-scoring")
    rollback = services.roll_back(endpoint, by=oncall, reason="AUC alert", source=Deployment.Source.UI)
    client = client_for(auditor)
    for path in ("/releases/churn-v42/", "/audit/?release=churn-v42"):
        html = client.get(path).content.decode()
        assert "AUC alert" in html, path
    trail = client.get("/audit/?release=churn-v41").content.decode()
    assert "AUC alert" in trail, "the rollback that made v41 live again is v41's too"
    assert rollback.release.name == "churn-v41"
