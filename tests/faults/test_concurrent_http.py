"""Twenty ML leads signing one release at once, then twenty on-call engineers rolling one endpoint back at once,
over HTTP against gunicorn with 4 workers on PostgreSQL.

What "exactly one" means here, from the rules (releases/lineage/rules.py): an approval takes
LINEAGE_REQUIRED_APPROVALS signatures (1 by default) and then no more, so of twenty leads signing at once exactly
one signature is accepted, the release turns approved once, and nineteen are told 409 that it is already
approved. A rollback restores the target the engineer confirmed, so exactly one of twenty restores churn-v41
and nineteen are told 409 that the endpoint changed since they confirmed (never a second step back to
churn-v40). Both doors of the rollback are used: ten engineers confirm on the page, ten call the API with
their token. No answer is a 500, the workers log no traceback, and the audit log verifies afterwards.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, User

from audit.log import verify_chain
from audit.models import AuditEvent
from releases.models import ApiToken, Approval, Deployment, Release
from releases.roles import ML_LEADS, ON_CALL
from tests.conftest import PASSWORD
from tests.factories import World
from tests.faults.gunicorn import Site, gunicorn_site
from tests.unit.conftest import MEANING, pending_release, token_for

__all__ = ["gunicorn_site"]  # a fixture

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PEOPLE = 20
TIMEOUT = 60  # seconds for one request: a hung worker fails the test instead of hanging it


@dataclass
class Answer:
    status: int
    body: str
    seconds: float


def at_once(calls: list[Callable[[], requests.Response]]) -> list[Answer]:
    """Send the requests from as many threads, released together by a barrier; each answer with its latency."""
    barrier = threading.Barrier(len(calls))

    def send(call: Callable[[], requests.Response]) -> Answer:
        barrier.wait(timeout=TIMEOUT)
        started = time.monotonic()
        response = call()
        return Answer(response.status_code, response.text, time.monotonic() - started)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(send, calls))


def people(prefix: str, role: str) -> list[User]:
    """PEOPLE users in ``role``, sharing one password hash the site can check (one hashing, not twenty)."""
    hashed = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    users = User.objects.bulk_create(
        User(username=f"{prefix}-{n:02}", first_name=prefix.title(), last_name=f"{n:02}", password=hashed)
        for n in range(1, PEOPLE + 1)
    )
    Group.objects.get(name=role).user_set.add(*users)
    return users


def signed_in(site: Site, user: User) -> requests.Session:
    """A browser session signed in through the login form."""
    session = requests.Session()
    page = session.get(f"{site.url}/login/", timeout=TIMEOUT)
    response = session.post(
        f"{site.url}/login/",
        {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(page.text)},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert response.status_code == 302, f"{user.username} could not sign in: {response.status_code}"
    return session


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, "the page has no form"
    return found[1]


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"the page has no {name} field"
    return found[1]


def opened_by(site: Site, users: list[User], path: str) -> list[tuple[requests.Session, str]]:
    """Each user signed in, with the page at ``path`` open: their session and the page's HTML (its form)."""

    def open_page(user: User) -> tuple[requests.Session, str]:
        session = signed_in(site, user)
        page = session.get(f"{site.url}{path}", timeout=TIMEOUT)
        assert page.status_code == 200, f"{user.username} could not open {path}: {page.status_code}"
        return session, page.text

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(open_page, users))


def submitting(
    site: Site, session: requests.Session, html: str, path: str, fields: dict[str, str]
) -> Callable[[], requests.Response]:
    """Posting ``fields`` to ``path`` as the form on ``html`` does (with its CSRF token), when called."""
    form = {**fields, "csrfmiddlewaretoken": csrf_token(html)}
    return lambda: session.post(f"{site.url}{path}", form, allow_redirects=False, timeout=TIMEOUT)


def figures(answers: list[Answer]) -> str:
    seconds = sorted(a.seconds for a in answers)
    return f"median {statistics.median(seconds):.2f} s, slowest {seconds[-1]:.2f} s"


@pytest.fixture
def scene(postgres: None, release_manager: User, lead: User, monkeypatch: pytest.MonkeyPatch) -> World:
    """churn-v40, v41, v42 approved and deployed in turn on churn-scoring; churn-v43 waiting for a signature."""
    # The world's MLflow server does not exist: its release-tag write-backs fail at once instead of retrying.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    world = World.create()
    endpoint = world.endpoint()
    for number, hours_ago in ((40, 72), (41, 48), (42, 1)):
        release = world.full_release(number, by=release_manager, approver=lead, dataset=f"churn-train:{number - 24}")
        world.deploy(endpoint, release, by=release_manager, hours_ago=hours_ago)
    pending_release(world, release_manager, number=43, datasets=("churn-train:19",))
    return world


def test_twenty_leads_sign_one_release_and_twenty_on_call_roll_one_endpoint_back_at_once(
    scene: World, gunicorn_site: Site
) -> None:
    site = gunicorn_site
    leads = people("lead", ML_LEADS)
    engineers = people("oncall", ON_CALL)
    approvals_before = Approval.objects.count()

    # Each lead signs in and opens churn-v43's page, whose sign form carries the digest they review.
    opened = opened_by(site, leads, "/releases/churn-v43/")
    sign_form = {"decision": "approve", "meaning": MEANING, "password": PASSWORD, "comment": ""}
    signatures = at_once(
        [
            submitting(
                site, session, html, "/releases/churn-v43/sign/", {**sign_form, "digest": hidden(html, "digest")}
            )
            for session, html in opened
        ]
    )

    assert sorted(a.status for a in signatures) == [302] + [409] * (PEOPLE - 1), [a.status for a in signatures]
    [winner] = Approval.objects.filter(release__name="churn-v43")
    for refused in (a for a in signatures if a.status == 409):
        assert f"churn-v43 is already approved (signed by {winner.approver_name}); it needs no further signature" in (
            refused.body
        )
    assert Release.objects.get(name="churn-v43").state == Release.State.APPROVED
    assert Approval.objects.count() == approvals_before + 1
    assert AuditEvent.objects.filter(action="release.state_changed", object_key="churn-v43").count() == 1
    assert AuditEvent.objects.filter(action="release.approved", object_key="churn-v43").count() == 1
    refusals = AuditEvent.objects.filter(action="release.approval_refused", object_key="churn-v43")
    assert [event.new["rule"] for event in refusals] == ["already_approved"] * (PEOPLE - 1)

    # Ten engineers confirm the rollback on its page (the target they saw is in the form); ten use the API.
    on_page, by_api = engineers[: PEOPLE // 2], engineers[PEOPLE // 2 :]

    confirmations = opened_by(site, on_page, "/endpoints/churn-scoring/rollback/")
    assert {hidden(html, "target") for _, html in confirmations} == {"churn-v41"}
    tokens = [token_for(user, ApiToken.Scope.ROLLBACK) for user in by_api]
    reason = {"reason": "INC-311 AUC dropped after churn-v42"}
    rollbacks = at_once(
        [
            submitting(
                site, session, html, "/endpoints/churn-scoring/rollback/", {**reason, "target": hidden(html, "target")}
            )
            for session, html in confirmations
        ]
        + [
            lambda token=token: requests.post(
                f"{site.url}/api/endpoints/churn-scoring/rollback/",
                json={**reason, "target": "churn-v41"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT,
            )
            for token in tokens
        ]
    )

    statuses = [a.status for a in rollbacks]
    assert sorted(statuses) in ([201] + [409] * (PEOPLE - 1), [302] + [409] * (PEOPLE - 1)), statuses
    [rollback] = Deployment.objects.filter(kind=Deployment.Kind.ROLLBACK)
    changed = "churn-scoring changed since you confirmed: live now is churn-v41 (rollback by "
    for refused in (a for a in rollbacks if a.status == 409):
        assert changed + rollback.actor in refused.body.replace("&#x27;", "'"), refused.body[:500]
    live = Deployment.objects.filter(endpoint__name="churn-scoring").order_by("-deployed_at", "-id").first()
    assert live is not None
    assert live.release.name == "churn-v41", "one step back, never two"
    assert AuditEvent.objects.filter(action="deployment.rolled_back").count() == 1
    assert AuditEvent.objects.filter(action="deployment.rollback_refused").count() == PEOPLE - 1

    assert 500 not in statuses + [a.status for a in signatures]
    assert site.errors() == ""
    assert verify_chain().ok
    checkpoint = site.manage("audit_checkpoint")
    assert checkpoint.returncode == 0, checkpoint.stderr
    verified = site.manage("audit_verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    [intact] = [line for line in verified.stdout.splitlines() if line.startswith("audit log intact")]
    assert re.search(r"^checkpoints: [1-9][0-9]* signed by key", verified.stdout, re.MULTILINE), verified.stdout
    assert "not yet checkpointed: 0" in verified.stdout
    print(
        f"\n[20 leads sign churn-v43 at once] 1 accepted, {PEOPLE - 1} x 409 already approved; {figures(signatures)}"
        f"\n[20 on-call roll churn-scoring back at once, 10 page + 10 API] 1 accepted ({rollback.source}), "
        f"{PEOPLE - 1} x 409 changed since you confirmed; {figures(rollbacks)}"
        f"\n[audit_verify] {intact}, every one under a signed checkpoint"
    )
