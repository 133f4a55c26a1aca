"""Signing a release signs its lineage digest. The other approval tests are in services/test_release.py (the
rules) and views/test_approvals.py (the pages).

This module stays only while two files outside tests/unit name it: tests/integration/test_concurrency.py imports
MEANING and pending_release from here, and tests/unit/test_demo_and_settings.py runs the test below by its node id.
Once they name tests.unit.conftest and services/test_release.py, the test moves there and this module goes.
"""

from __future__ import annotations

from audit import signing
from audit.models import AuditEvent
from releases import lineage
from releases.models import Approval, Release
from tests.conftest import PASSWORD
from tests.factories import approve
from tests.unit.conftest import MEANING, pending_release

__all__ = ["MEANING", "pending_release"]


def test_approval_signs_the_lineage_digest_and_is_audited(world, release_manager, lead):
    release = pending_release(world, release_manager)
    digest = lineage.trace(release.name).digest

    approval = approve(release, by=lead, password=PASSWORD, meaning=MEANING, comment="looks good")

    release.refresh_from_db()
    approval = Approval.objects.get(pk=approval.pk)
    assert release.state == Release.State.APPROVED
    assert approval.approver_name == "Lena Lead"
    assert approval.signed_digest == digest
    assert lineage.trace(release.name).digest == digest, "signing does not change the digest it signed"
    assert approval.meaning == MEANING
    assert len(approval.signature) == 128
    assert signing.verify(approval.statement(), approval.signature)
    event = AuditEvent.objects.get(action="release.approved", object_key="churn-v42")
    assert event.actor == "lead"
    assert event.new["lineage_digest"] == digest
    assert event.new["signature"] == approval.signature
    assert event.reason == "looks good"
    [changed] = AuditEvent.objects.filter(action="release.state_changed", object_key="churn-v42")
    assert changed.new == {"state": "approved"}
