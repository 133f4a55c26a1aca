"""The log's public face, like a transparency log's: the newest signed checkpoint, the key that signs
checkpoints, and consistency proofs between checkpoints. Readable without signing in, so auditors,
witnesses and cron jobs outside can keep their own copies; nothing here reveals an event.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from audit import checkpoints, signing


def _text(body: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


def _with_key(response: HttpResponse) -> HttpResponse:
    response["X-Log-Key"] = signing.note_key().vkey
    response["X-Log-Key-Fingerprint"] = f"sha256:{signing.fingerprint()}"
    return response


@login_not_required
@require_GET
def latest_checkpoint(request: HttpRequest) -> HttpResponse:
    """The newest checkpoint as a signed note, with the witnesses' cosignatures."""
    checkpoint = checkpoints.latest()
    if checkpoint is None:
        return _with_key(_text("no checkpoint has been signed yet\n", status=404))
    return _with_key(_text(checkpoint.cosigned_note()))


@login_not_required
@require_GET
def log_key(request: HttpRequest) -> HttpResponse:
    """The note verifier key, its fingerprint and the PEM public key. Pin it by comparing out of band."""
    body = f"{signing.note_key().vkey}\nfingerprint sha256:{signing.fingerprint()}\n{signing.public_key_pem()}"
    return _with_key(_text(body))


@login_not_required
@require_GET
def consistency(request: HttpRequest, old: int, new: int) -> HttpResponse:
    """The RFC 6962 consistency proof from size ``old`` to size ``new``: base64 hashes, one a line."""
    checkpoint = checkpoints.latest()
    if checkpoint is None or not old <= new <= checkpoint.size:
        return _text(f"no proof from {old} to {new}: sizes must not exceed the newest checkpoint\n", status=404)
    return _text("".join(f"{line}\n" for line in checkpoints.consistency_proof(old, new)))
