"""The audit vocabulary: every action is registered with plain words, and events are filed under one naming."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import transaction

from audit import log, vocabulary
from audit.models import AuditEvent
from releases.models import Endpoint, Release
from tests.factories import SYSTEM, World

ROOT = Path(__file__).resolve().parents[2]
WRITERS = {"record", "PendingEvent", "recorded", "audited", "_transition"}


def actions_named_in_code() -> set[str]:
    """Every literal action name the code hands to the audit log (and f-string prefixes such as ``run.``)."""
    found: set[str] = set()
    for package in ("releases", "audit"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                candidates = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "action")]
                if name in WRITERS or any(k.arg == "action" for k in node.keywords):
                    for arg in candidates:
                        for part in ast.walk(arg):  # also both branches of "a" if ... else "b"
                            if isinstance(part, ast.Constant) and isinstance(part.value, str) and "." in part.value:
                                found.add(part.value)
    return found


def test_every_action_the_code_records_is_registered_with_a_description():
    named = actions_named_in_code()
    assert {"release.approved", "deployment.rolled_back", "release.creation_refused"} <= named
    prefixes = {name for name in named if name.endswith(".")}  # f"run.{outcome}"
    assert sorted(named - prefixes - set(vocabulary.ACTIONS)) == []
    for prefix in prefixes:
        assert any(action.startswith(prefix) for action in vocabulary.ACTIONS), prefix
    for action, description in vocabulary.ACTIONS.items():
        assert description.endswith("."), action
        assert len(description) > 20, action


@pytest.mark.django_db
def test_an_unregistered_action_is_refused_and_nothing_is_written():
    with pytest.raises(vocabulary.UnknownAction), transaction.atomic():
        log.record("release.aproved", actor=SYSTEM, object_type="release", object_key="churn-v42")
    assert not AuditEvent.objects.exists()


def test_a_description_cannot_be_registered_twice_with_other_words():
    with pytest.raises(ValueError, match="already registered"):
        vocabulary.register("release.approved", "Something else.")


@pytest.mark.django_db
def test_object_ref_names_each_link_as_events_are_filed(ci_account, lead):
    world = World.create()
    release = world.full_release(42, by=ci_account, approver=lead)
    release = Release.objects.with_chain().get(pk=release.pk)
    run = release.model_version.run
    assert vocabulary.object_ref(release) == ("release", "churn-v42")
    assert vocabulary.object_ref(release.model_version) == ("model_version", "churn-model/42")
    assert vocabulary.object_ref(run) == ("run", f"mlflow:{run.run_id}")
    assert vocabulary.object_ref(lead) == ("user", "lead")
    assert vocabulary.object_ref(world.repo.sync_state) == ("git_source", "churn")
    endpoint = world.endpoint()
    assert vocabulary.object_ref(endpoint) == ("endpoint", "churn-scoring")
    # The events the services wrote are found under exactly these names.
    assert AuditEvent.objects.filter(object_type="release", object_key="churn-v42", action="release.approved").exists()
    assert AuditEvent.objects.filter(object_type="endpoint", object_key=Endpoint.objects.get().name).exists()
    with pytest.raises(TypeError, match="does not say how the audit log names it"):
        vocabulary.object_ref(object())
