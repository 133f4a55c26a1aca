"""Adding and changing webhooks (releases/services/webhooks.py): administrators only, audited, and an address
or secret that cannot be used is refused in one line, whatever door it comes through."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.vocabulary import OUTBOUND_EVENTS
from releases import services
from releases.errors import Conflict, InvalidInput
from releases.models import WebhookSubscription
from tests.factories import SYSTEM

pytestmark = pytest.mark.django_db
SECRET_ENV = "LINEAGE_WEBHOOK_SECRET_OPS"


def _add(**values: object) -> WebhookSubscription:
    arguments: dict[str, object] = {
        "name": "ops",
        "url": "https://hooks.example.com/lineage",
        "secret_env": SECRET_ENV,
        "by": SYSTEM,
        **values,
    }
    return services.add_webhook(**arguments)[0]  # type: ignore[arg-type]


def test_adding_a_webhook_is_audited_with_its_secrets_name_only():
    subscription = _add(events=["deployment.rolled_back", "release.submitted", "release.submitted"])
    subscription.refresh_from_db()
    # Kept in the order of the event list, each once.
    assert subscription.events == ["release.submitted", "deployment.rolled_back"]
    [event] = AuditEvent.objects.filter(action="webhook_subscription.added")
    assert (event.actor, event.object_type, event.object_key) == ("test-setup", "webhook_subscription", "ops")
    assert event.new == {
        "url": "https://hooks.example.com/lineage",
        "events": ["release.submitted", "deployment.rolled_back"],
        "format": "json",
        "secret_env": SECRET_ENV,
        "active": True,
    }


def test_every_event_by_default():
    assert _add().events == list(OUTBOUND_EVENTS)


def test_the_same_webhook_again_changes_nothing_and_another_under_its_name_is_refused():
    first = _add()
    again, created = services.add_webhook(
        name="ops", url="https://hooks.example.com/lineage", secret_env=SECRET_ENV, by=SYSTEM
    )
    assert (again.pk, created) == (first.pk, False)
    assert AuditEvent.objects.filter(action="webhook_subscription.added").count() == 1
    with pytest.raises(Conflict, match="webhook ops already exists with another url; change it in the admin"):
        _add(url="https://elsewhere.example.com/")
    [refused] = AuditEvent.objects.filter(action="webhook_subscription.add_refused")
    assert refused.new == {"rule": "webhook_exists"}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "only http:// and https:// addresses are accepted"),
        ("ftp://files.example.com/drop", "only http:// and https:// addresses are accepted"),
        ("javascript:alert(1)", "only http:// and https:// addresses are accepted"),
        ("JaVaScRiPt:alert(1)", "only http:// and https:// addresses are accepted"),
        ("//hooks.example.com/x", "only http:// and https:// addresses are accepted"),
        ("https://", "the address has no host"),
        ("https://hooks.example.com:99999/x", "the address's port is not a number from 0 to 65535"),
        ("https://hooks.example.com/a b", "an address cannot contain spaces, control characters or backslashes"),
        ("https://hooks.example.com/a\nb", "an address cannot contain spaces, control characters or backslashes"),
    ],
)
def test_an_address_that_is_not_http_or_https_is_refused_in_one_line(url, problem):
    with pytest.raises(InvalidInput) as refused:
        _add(url=url)
    message = refused.value.message
    assert "\n" not in message
    assert message.startswith("the webhook URL ")
    assert message.endswith(f" cannot be used: {problem}")
    assert not WebhookSubscription.objects.exists()
    [event] = AuditEvent.objects.filter(action="webhook_subscription.add_refused")
    assert (event.object_key, event.reason, event.new) == ("ops", message, {"rule": "not_a_web_url"})


@pytest.mark.parametrize("url", ["https://bob:hunter2@hooks.example.com/x", "https://bob@hooks.example.com/x"])
def test_an_address_with_credentials_is_refused_and_they_are_not_recorded(url):
    with pytest.raises(InvalidInput) as refused:
        _add(url=url)
    assert refused.value.message == (
        "the webhook URL 'https://…@hooks.example.com/x' cannot be used: an address cannot carry a user name or "
        "password; name the secret instead"
    )
    [event] = AuditEvent.objects.filter(action="webhook_subscription.add_refused")
    assert "bob" not in event.reason
    assert "hunter2" not in event.reason


@pytest.mark.parametrize(
    ("secret_env", "words"),
    [
        ("DATABASE_URL", "must be named LINEAGE_WEBHOOK_SECRET_<SOMETHING>, not 'DATABASE_URL'"),
        ("SECRET_KEY", "must be named LINEAGE_WEBHOOK_SECRET_<SOMETHING>"),
        ("LINEAGE_WEBHOOK_SECRET_", "must be named LINEAGE_WEBHOOK_SECRET_<SOMETHING>"),
        ("lineage_webhook_secret_ops", "an environment variable name is capitals, digits and _"),
        ("LINEAGE_WEBHOOK_SECRET_OPS=x", "an environment variable name is capitals, digits and _"),
        ("LINEAGE_WEBHOOK_SECRET_OPS_FILE", "name the variable itself (LINEAGE_WEBHOOK_SECRET_OPS)"),
        ("/run/secrets/ops", "an environment variable name is capitals, digits and _"),
    ],
)
def test_a_secret_is_named_by_a_webhook_variable_never_another(secret_env, words):
    with pytest.raises(InvalidInput, match=r"^[^\n]*$") as refused:
        _add(secret_env=secret_env)
    assert words in refused.value.message
    assert AuditEvent.objects.filter(action="webhook_subscription.add_refused").count() == 1


def test_a_json_webhook_must_be_signed_a_slack_one_need_not():
    with pytest.raises(InvalidInput, match="a JSON webhook is signed: name the environment variable"):
        _add(secret_env="")
    assert _add(name="chat", secret_env="", format="slack").secret_env == ""


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"events": []}, "a webhook's events: choose at least one event"),
        ({"events": ["release.deployed"]}, "unknown events 'release.deployed'; the events are release.submitted"),
        ({"format": "xml"}, "the format must be json or slack, not 'xml'"),
    ],
)
def test_unknown_events_and_formats_are_refused(values, words):
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(")):
        _add(**values)


def test_changing_a_webhook_records_what_changed():
    subscription = _add()
    changed = services.change_webhook(
        subscription,
        url="https://hooks.example.com/v2",
        events=["release.approved"],
        format="json",
        secret_env="LINEAGE_WEBHOOK_SECRET_OPS2",
        active=False,
        by=SYSTEM,
    )
    changed.refresh_from_db()
    assert (changed.url, changed.events, changed.secret_env, changed.active) == (
        "https://hooks.example.com/v2",
        ["release.approved"],
        "LINEAGE_WEBHOOK_SECRET_OPS2",
        False,
    )
    [event] = AuditEvent.objects.filter(action="webhook_subscription.changed")
    assert event.old == {
        "url": "https://hooks.example.com/lineage",
        "events": list(OUTBOUND_EVENTS),
        "secret_env": SECRET_ENV,
        "active": True,
    }
    assert event.new == {
        "url": "https://hooks.example.com/v2",
        "events": ["release.approved"],
        "secret_env": "LINEAGE_WEBHOOK_SECRET_OPS2",
        "active": False,
    }


def test_saving_a_webhook_unchanged_records_nothing():
    subscription = _add()
    services.change_webhook(
        subscription,
        url=subscription.url,
        events=subscription.events,
        format=subscription.format,
        secret_env=subscription.secret_env,
        active=True,
        by=SYSTEM,
    )
    assert not AuditEvent.objects.filter(action="webhook_subscription.changed").exists()


def test_a_change_to_an_address_that_cannot_be_used_is_refused_and_audited():
    subscription = _add()
    with pytest.raises(InvalidInput, match="cannot be used: only http:// and https:// addresses are accepted"):
        services.change_webhook(
            subscription,
            url="file:///etc/passwd",
            events=subscription.events,
            format="json",
            secret_env=SECRET_ENV,
            active=True,
            by=SYSTEM,
        )
    subscription.refresh_from_db()
    assert subscription.url == "https://hooks.example.com/lineage"
    [event] = AuditEvent.objects.filter(action="webhook_subscription.change_refused")
    assert (event.object_key, event.new) == ("ops", {"rule": "not_a_web_url"})
