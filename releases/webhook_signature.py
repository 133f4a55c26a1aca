"""The one signing construction for webhooks, both ways: MLflow's deliveries to us, ours to subscribers.

MLflow 3 signs ``<delivery id>.<unix timestamp>.<body>`` with HMAC-SHA256 under the shared secret and
sends ``v1,`` and the base64 digest. Outbound events are signed the same way, so a receiver that can
check one can check the other, and the timestamp lets it refuse a replayed delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``<delivery id>.<timestamp>.<body>`` under ``secret``."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
