"""One rule, one answer: the approval queue, the sign panel on the release page and the signing service
give every persona the same answer for the same release, because they all ask ``lineage.signing_refusal``.
And one status: the badge, the list, the board, the API and the evidence bundle agree on it.

An approval stays true only while the chain it signed does; the queue lists what a lead may sign now.
"""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.urls import reverse

from releases import lineage, services
from releases.errors import LineageError
from releases.models import DatasetVersion, Release
from tests.conftest import PASSWORD, _person
from tests.factories import SYSTEM, World, approve
from tests.unit.conftest import MEANING, client_for, pending_release

PERSONAS = ("lead", "lead2", "auditor", "oncall", "relman", "ci", "root")


class Rollback(Exception):
    """Undo a signature made only to see whether the service allows it."""


@pytest.fixture
def people(lead, lead2, auditor, oncall, release_manager, ci_account) -> dict[str, User]:
    root = _person("root")
    root.is_superuser = root.is_staff = True
    root.save()
    return {user.username: user for user in (lead, lead2, auditor, oncall, release_manager, ci_account, root)}


def situations(world: World, people: dict[str, User]) -> list[Release]:
    """Releases in the states that decide who may sign: each rule of signing_refusal is met once."""
    by_relman = pending_release(world, people["relman"], number=42)
    by_lead = pending_release(world, people["lead"], number=43)
    trained_by_lead2 = pending_release(world, people["relman"], number=44, run_user="lead2")
    no_data = pending_release(world, people["relman"], number=45, datasets=())
    no_report = pending_release(world, people["relman"], number=46, report="")
    signed = pending_release(world, people["relman"], number=47)
    approve(signed, by=people["lead"])
    draft = world.release("churn-v48", world.model_version("churn-model/48"), by=people["relman"])
    quarantined = pending_release(world, people["relman"], number=49, datasets=("churn-train:20",))
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:20").get(), by=people["lead"], reason="label leak"
    )
    return [by_relman, by_lead, trained_by_lead2, no_data, no_report, signed, draft, quarantined]


def service_answer(release: Release, user: User) -> str:
    """What sign_release does for this person: "" when it signs, else the rule it refuses by."""
    trace = lineage.trace(release.name)
    try:
        with transaction.atomic():
            services.sign_release(
                release,
                by=user,
                decision="approve",
                password=PASSWORD,
                meaning="Approved for production",
                expected_digest=trace.digest,
            )
            raise Rollback
    except Rollback:
        return ""
    except LineageError as refused:
        return refused.rule


def test_queue_panel_and_service_give_every_persona_the_same_answer(world, people):
    releases = situations(world, people)
    disagreements = []
    rules_seen = set()
    for username in PERSONAS:
        user = people[username]
        client = Client()
        client.force_login(user)
        queue = lineage.approval_queue(user)
        ready = {trace.release.name for trace in queue.ready}
        for release in releases:
            trace = lineage.trace(release.name)
            waiting = trace.release.state == Release.State.PENDING
            refusal = lineage.signing_refusal(trace, user)
            rule = refusal.rule if refusal else ""
            rules_seen.add(rule)
            html = client.get(reverse("releases:release", args=[release.name])).content.decode()
            panel_offers_approval = 'name="password"' in html and "You cannot approve" not in html
            answers = {
                "rule": rule,
                "service": service_answer(release, user),
                "queue": "" if release.name in ready else "not ready",
                "panel": "" if panel_offers_approval else "refused",
            }
            # The queue lists what is waiting (pending), which an approved release is not.
            expected = {"rule": rule, "service": rule, "queue": "" if not rule and waiting else "not ready"}
            expected["panel"] = "" if not rule else "refused"
            if answers != expected:
                disagreements.append(f"{username} on {release.name}: {answers}")
            if refusal is not None and waiting and username != "root":
                assert refusal.message in html.replace("&#x27;", "'"), (username, release.name)
    assert disagreements == []
    # The matrix really exercised the rules, not one answer everywhere.
    assert rules_seen >= {
        "",
        "not_ml_lead",
        "four_eyes",
        "incomplete_chain",
        "no_validation_report",
        "already_signed",
        "already_approved",
        "wrong_state",
        "quarantined_data",
    }


def test_one_status_everywhere_for_an_invalidated_release(world, people, client):
    """Quarantine after approval: badge, banner, list, board, API and evidence all say "Approval invalidated"."""
    endpoint = world.endpoint()
    release = world.full_release(42, by=people["ci"], approver=people["lead"], dataset="churn-train:18")
    world.deploy(endpoint, release, by=people["relman"], hours_ago=1)
    services.quarantine_dataset_version(
        DatasetVersion.objects.by_key("churn-train:18").get(), by=people["lead"], reason="label mapping changed"
    )
    status = lineage.release_status(lineage.trace("churn-v42"))
    assert (status.key, status.label) == ("invalidated", "Approval invalidated")
    assert "dataset churn-train:18 status changed from active to quarantined" in status.detail

    client.force_login(people["auditor"])
    badge = '<span class="state state-invalidated"'
    for url in ("/releases/churn-v42/", "/releases/", "/"):
        html = client.get(url).content.decode()
        assert badge in html, url
        assert 'class="state state-approved"' not in html, url
    assert "Approval invalidated:</strong>" in client.get("/releases/churn-v42/").content.decode()

    token_client = Client()
    token_client.force_login(people["auditor"])
    api = token_client.get("/api/releases/churn-v42/").json()
    assert (api["state"], api["status"]["label"]) == ("invalidated", "Approval invalidated")

    from releases.evidence import export_evidence

    _, data = export_evidence(Release.objects.get(name="churn-v42"), by=people["auditor"])
    import zipfile

    trace_json = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("trace.json"))
    assert trace_json["status"]["key"] == "invalidated"


def test_a_release_waiting_for_approval_shows_deployment_as_pending_not_missing(world, people, client):
    pending_release(world, people["relman"])
    incomplete = pending_release(world, people["relman"], number=43, datasets=())
    client.force_login(people["lead"])
    html = client.get("/releases/churn-v42/").content.decode()
    assert "5/5 links · endpoint pending" in html
    assert "… after approval" in html
    assert "✕ missing" not in html
    # A real gap still reads as one.
    html = client.get(f"/releases/{incomplete.name}/").content.decode()
    assert "4/5 links · endpoint pending" in html
    assert "✕ missing" in html
    listing = client.get("/releases/").content.decode()
    assert listing.count("endpoint pending") == 2


def test_queue_lists_only_releases_the_lead_may_sign(world, release_manager, lead, lead2):
    theirs = pending_release(world, release_manager, number=42)
    own = pending_release(world, lead, number=43)

    def queue(user):
        return [trace.release for trace in lineage.awaiting_signature(user)]

    assert queue(lead) == [theirs]
    assert set(queue(lead2)) == {theirs, own}
    approve(theirs, by=lead2, password=PASSWORD, meaning=MEANING)
    assert queue(lead2) == [own]


def test_moved_tag_after_approval_invalidates_it(world, release_manager, lead):
    release = pending_release(world, release_manager, tag="model-churn-v42")
    approve(release, by=lead, password="correct horse battery staple", meaning="Reviewed")
    hotfix = world.commit("hotfix")

    services.record_tag(world.repo, name="model-churn-v42", sha=hotfix.sha, by=SYSTEM)

    html = client_for(lead).get(reverse("releases:release", args=[release.name])).content.decode()
    assert "Approval invalidated" in html
    assert f"tag model-churn-v42 moved to {hotfix.sha[:7]}" in html
    refusal = lineage.promotion_refusal(lineage.trace(release.name), world.endpoint())
    assert refusal is not None
    assert refusal.rule == "promotion_gate"
    assert "no longer valid" in refusal.message
