"""Delivering outbound events (releases/outbound/webhooks.py) to a real HTTP receiver on loopback: signed like
the inbound MLflow webhook, retried with backoff, stopped by a refusal, every attempt in the delivery log."""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.utils import timezone

from releases import tasks
from releases.models import Release, WebhookAttempt, WebhookDelivery
from releases.outbound import webhooks
from tests.factories import World, reject
from tests.unit.conftest import pending_release
from tests.unit.outbound.conftest import SECRET_ENV, Receiver, running_receiver, subscribe

pytestmark = pytest.mark.usefixtures("secret")


@pytest.fixture
def submit(world: World, release_manager: User, django_capture_on_commit_callbacks: Any) -> Any:
    """Submit churn-v<number> for approval as a release manager, its announcement run once the change commits."""

    def run(number: int = 42) -> Release:
        with django_capture_on_commit_callbacks(execute=True):
            return pending_release(world, release_manager, number=number)

    return run


def _only_delivery() -> WebhookDelivery:
    [delivery] = WebhookDelivery.objects.select_related("subscription")
    return delivery


def _attempts(delivery: WebhookDelivery) -> list[tuple[int, int | None]]:
    return list(delivery.attempt_log.order_by("number").values_list("number", "status_code"))


def _after_backoff(delivery: WebhookDelivery) -> None:
    """Let the delivery's backoff pass, then run what beat runs every minute."""
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    with time_machine.travel(delivery.next_attempt_at + datetime.timedelta(seconds=1), tick=True):
        tasks.retry_webhook_deliveries()
    delivery.refresh_from_db()


def test_an_event_is_posted_as_signed_json_and_logged(receiver: Receiver, submit, secret):
    subscribe(receiver.url, ["release.submitted"])
    submit()
    [got] = receiver.received
    delivery = _only_delivery()
    assert got.path == "/hooks/lineage"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Lineage-Event"] == "release.submitted"
    assert got.headers["X-Lineage-Delivery-Id"] == delivery.delivery_id
    assert abs(int(got.headers["X-Lineage-Timestamp"]) - time.time()) < 30
    assert got.signed_with(secret)
    assert not got.signed_with("another secret")
    assert got.body == delivery.body.encode()
    assert delivery.payload_digest == "sha256:" + hashlib.sha256(got.body).hexdigest()
    assert got.document["type"] == "release.submitted"
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    assert _attempts(delivery) == [(1, 200)]


def test_a_500_is_retried_with_backoff_until_the_receiver_takes_it(receiver: Receiver, submit, secret):
    receiver.answer(500, 500)
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("retrying", 1, 500)
    assert "500 Internal Server Error: receiver says 500" in delivery.last_error
    first = delivery.attempt_log.get().at
    assert delivery.next_attempt_at is not None
    assert 29 <= (delivery.next_attempt_at - first).total_seconds() <= 35
    # Not due yet: beat's sweep leaves it alone.
    assert tasks.retry_webhook_deliveries() == 0
    assert len(receiver.received) == 1
    _after_backoff(delivery)
    assert (delivery.status, delivery.attempts) == ("retrying", 2)
    second = delivery.attempt_log.get(number=2).at
    assert 59 <= (delivery.next_attempt_at - second).total_seconds() <= 65, "the backoff doubles"
    _after_backoff(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        3,
        200,
        "",
    )
    assert _attempts(delivery) == [(1, 500), (2, 500), (3, 200)]
    # Every attempt sent the same event under the same delivery id, each signed with its own timestamp.
    assert {r.body for r in receiver.received} == {delivery.body.encode()}
    assert {r.headers["X-Lineage-Delivery-Id"] for r in receiver.received} == {delivery.delivery_id}
    assert all(r.signed_with(secret) for r in receiver.received)
    assert len({r.headers["X-Lineage-Timestamp"] for r in receiver.received}) == 3


def test_a_404_stops_at_once_and_says_why(receiver: Receiver, submit):
    receiver.answer(404)
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 404)
    assert delivery.last_error == (
        "the receiver refused the delivery (404 Not Found): receiver says 404; not retried: check the webhook's "
        "URL and secret"
    )
    assert delivery.next_attempt_at is None
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=2)):
        assert tasks.retry_webhook_deliveries() == 0
    assert len(receiver.received) == 1
    [attempt] = delivery.attempt_log.all()
    assert (attempt.status_code, attempt.error) == (404, delivery.last_error)


@pytest.mark.parametrize("status", [408, 429])
def test_a_receiver_asking_for_time_is_retried(receiver: Receiver, submit, status):
    receiver.answer(status, headers={"Retry-After": "120"})
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_status_code) == ("retrying", status)
    # Retry-After, when longer than the backoff, is respected.
    assert 119 <= (delivery.next_attempt_at - delivery.attempt_log.get().at).total_seconds() <= 125
    _after_backoff(delivery)
    assert delivery.status == "delivered"


def test_a_delivery_gives_up_after_six_attempts(receiver: Receiver, submit):
    receiver.answer(*[503] * 6)
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    for _ in range(5):
        _after_backoff(delivery)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 6, None)
    assert delivery.last_error.endswith("(gave up after 6 attempts)")
    assert [code for _, code in _attempts(delivery)] == [503] * 6
    gaps = [
        (b - a).total_seconds()
        for a, b in zip(
            delivery.attempt_log.order_by("number").values_list("at", flat=True),
            delivery.attempt_log.order_by("number").values_list("at", flat=True)[1:],
            strict=False,
        )
    ]
    assert [round(gap / 30) for gap in gaps] == [1, 2, 4, 8, 16], "30 s doubling"
    assert len(receiver.received) == 6


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    """Another receiver a redirect could point at: it must never hear anything."""
    with running_receiver() as running:
        yield running


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "OTHER"])
def test_a_redirect_is_never_followed(receiver: Receiver, second_receiver: Receiver, submit, location):
    location = second_receiver.url if location == "OTHER" else location
    receiver.answer(307, headers={"Location": location})
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_status_code) == ("failed", 307)
    assert f"redirects (307 Temporary Redirect) to {location}; deliveries never follow a redirect" in (
        delivery.last_error
    )
    assert len(receiver.received) == 1
    assert second_receiver.received == []


def test_slack_format_is_text_and_blocks_with_a_persons_words_escaped(
    receiver: Receiver, world: World, release_manager, lead, settings, django_capture_on_commit_callbacks
):
    settings.LINEAGE_BASE_URL = "https://lineage.example.com"
    subscribe(receiver.url, ["release.rejected"], format="slack", secret_env="")
    release = pending_release(world, release_manager)
    with django_capture_on_commit_callbacks(execute=True):
        reject(release, by=lead, comment="<!channel> labels drift & <https://evil.example|click>")
    [got] = receiver.received
    message = json.loads(got.body)
    assert set(message) == {"text", "blocks"}
    assert message["text"] == (
        "Rejected: churn-v42 was rejected by lead: &lt;!channel&gt; labels drift &amp; "
        "&lt;https://evil.example|click&gt;"
    )
    section, context = message["blocks"]
    assert section["type"] == "section"
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "*Rejected*\nchurn-v42 was rejected by lead: &lt;!channel&gt; labels drift &amp; "
        "&lt;https://evil.example|click&gt;",
    }
    [elements] = context["elements"]
    assert "<https://lineage.example.com/releases/churn-v42/|Open in release lineage>" in elements["text"]
    assert "`release.rejected`" in elements["text"]
    # A Slack webhook may go unsigned (Slack does not check signatures); the timestamp is still sent.
    assert "X-Lineage-Signature" not in got.headers
    assert got.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("problem", ["missing", "directory", "empty"])
def test_an_unreadable_secret_file_is_a_clear_error_in_the_log(
    receiver: Receiver, submit, monkeypatch, tmp_path: Path, problem
):
    path = tmp_path / "secret"
    if problem == "directory":
        path.mkdir()
    elif problem == "empty":
        path.write_text("\n")
    monkeypatch.setenv(f"{SECRET_ENV}_FILE", str(path))
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    why = {"missing": "cannot be read: No such file or directory", "directory": "cannot be read: Is a directory"}
    expected = f"the secret file {path} (from {SECRET_ENV}_FILE) {why.get(problem, 'is empty')}; not sent"
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("failed", None, expected)
    assert "Traceback" not in delivery.last_error
    assert receiver.received == []
    [attempt] = delivery.attempt_log.all()
    assert attempt.error == expected


def test_the_secret_is_read_from_the_file_its_variable_names(receiver: Receiver, submit, monkeypatch, tmp_path):
    path = tmp_path / "secret"
    path.write_text("from a mounted file\n")
    monkeypatch.setenv(f"{SECRET_ENV}_FILE", str(path))
    subscribe(receiver.url)
    submit()
    [got] = receiver.received
    assert got.signed_with("from a mounted file")


def test_a_secret_not_set_where_the_worker_runs_is_a_clear_error(receiver: Receiver, submit, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert delivery.status == "failed"
    assert delivery.last_error == (
        f"the secret {SECRET_ENV} is not set in this process's environment (nor {SECRET_ENV}_FILE); not sent"
    )
    assert receiver.received == []


def test_an_address_rewritten_behind_the_apps_back_is_checked_again_before_sending(receiver: Receiver, submit):
    receiver.answer(500)
    subscription = subscribe(receiver.url)
    submit()
    type(subscription).objects.filter(pk=subscription.pk).update(url="file:///etc/passwd")
    delivery = _only_delivery()
    _after_backoff(delivery)
    assert delivery.status == "failed"
    assert delivery.last_error == (
        "the webhook's URL cannot be used (only http:// and https:// addresses are accepted); not sent"
    )
    assert len(receiver.received) == 1


def test_a_webhook_switched_off_meanwhile_is_not_sent_to(receiver: Receiver, submit):
    receiver.answer(500)
    subscription = subscribe(receiver.url)
    submit()
    type(subscription).objects.filter(pk=subscription.pk).update(active=False)
    delivery = _only_delivery()
    _after_backoff(delivery)
    assert (delivery.status, delivery.last_error) == (
        "failed",
        "the webhook was switched off before this attempt; not sent",
    )
    assert len(receiver.received) == 1
    # Switched off, it receives no new event either.
    submit(43)
    assert WebhookDelivery.objects.count() == 1


def test_only_the_events_a_webhook_asked_for_are_sent(receiver: Receiver, submit):
    subscribe(receiver.url, ["deployment.deployed"])
    submit()
    assert receiver.received == []
    assert not WebhookDelivery.objects.exists()


def test_announcing_an_event_again_delivers_it_once(receiver: Receiver, submit):
    subscribe(receiver.url)
    submit()
    delivery = _only_delivery()
    assert tasks.announce_event(delivery.audit_seq) == 0
    assert WebhookDelivery.objects.count() == 1
    assert WebhookAttempt.objects.count() == 1
    assert len(receiver.received) == 1


def test_a_receiver_that_never_answers_is_retried_after_the_timeout(submit, settings):
    settings.LINEAGE_WEBHOOK_TIMEOUT_SECONDS = 1
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)  # connections are accepted by the kernel; nobody ever reads or answers
        subscribe(f"http://127.0.0.1:{silent.getsockname()[1]}/")
        submit()
    delivery = _only_delivery()
    assert (delivery.status, delivery.last_status_code) == ("retrying", None)
    assert delivery.last_error == "no answer within 1 seconds"


def test_a_receiver_that_is_down_is_retried(submit):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    subscribe(f"http://127.0.0.1:{port}/")
    submit()
    delivery = _only_delivery()
    assert delivery.status == "retrying"
    assert delivery.last_error == "could not reach the receiver: Connection refused"


def test_the_retry_delays_stay_below_the_brokers_visibility_timeout(settings):
    delays = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS)]
    assert delays == [30, 60, 120, 240, 480]
    assert (
        max(delays) + settings.LINEAGE_WEBHOOK_TIMEOUT_SECONDS
        < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    )
