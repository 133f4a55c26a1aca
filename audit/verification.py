"""Checking the audit log against its signed checkpoints: what ``manage.py audit_verify`` runs.

The hash chain alone proves nothing against someone who can write to the database: they can change
an event and recompute every hash after it. What they cannot do without the signing key is sign a
new checkpoint. So every checkpoint (in the database and in the checkpoint log kept outside it) is
checked against the trusted key, the Merkle root of the events at its size is recomputed and compared
with the signed one, and the stored tree must prove each checkpoint extends the one before. A rewrite
of anything a checkpoint covers is named by its first sequence number and the checkpoint it contradicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import alarm, checkpoints, log, merkle, tree, verifier, vocabulary
from audit.log import SystemActor
from audit.models import AuditEvent, Checkpoint, TreeNode, Verification, VerificationRun


@dataclass
class SignedCheckpoint:
    """A checkpoint whose signature verified: from the database, from a checkpoint log, or both."""

    size: int
    root: bytes
    row: Checkpoint | None = None
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        if self.row is not None:
            return f"checkpoint {self.size} (signed {self.row.issued_at:%Y-%m-%d %H:%M:%S} UTC)"
        return f"checkpoint {self.size} (from {self.files[0]})"


@dataclass(frozen=True)
class Report:
    events: int = 0
    checkpoints: int = 0
    newest: int = 0
    pending: int = 0
    resumed_from: int | None = None
    broken_seq: int | None = None
    problem: str = ""
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problem


class _Broken(Exception):
    def __init__(self, problem: str, seq: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.seq = seq


def verify_log(log_key: bytes, *, checkpoint_logs: Iterable[Path] = (), incremental: bool = False) -> Report:
    """Check the log against every checkpoint signed by ``log_key`` (raw Ed25519 public key).

    ``incremental`` resumes from the newest stored ``Verification`` when its edge still matches its
    checkpoint and its last event is unchanged; otherwise the whole log is walked again.
    """
    notes: list[str] = []
    start = _resume_point(log_key, notes) if incremental else None
    try:
        signed = _signed_checkpoints(log_key, list(checkpoint_logs), above=start.size if start else 0)
        report = _walk(signed, start)
        _check_consistency(signed)
        _check_rows_kept(signed)
        _check_signed_decisions(log_key, after=start.size if start else 0, checkpointed=report.newest)
    except _Broken as broken:
        return Report(broken_seq=broken.seq, problem=broken.problem, notes=tuple(notes))
    return replace(report, notes=tuple(notes))


VERIFIER = SystemActor("audit-verify")


def record_run(report: Report, *, trigger: str, incremental: bool) -> VerificationRun:
    """Keep what a verification found; a failure is also an audit event, an alarm and an alert."""
    with transaction.atomic():
        run = VerificationRun.objects.create(
            ran_at=timezone.now(),
            trigger=trigger,
            ok=report.ok,
            events=report.events,
            checkpoints=report.checkpoints,
            newest_checkpoint=report.newest,
            pending=report.pending,
            incremental=incremental,
            broken_seq=report.broken_seq,
            problem=report.problem,
        )
        if not report.ok:
            log.record(
                "audit.verification_failed",
                actor=VERIFIER,
                object_type="audit_log",
                object_key=settings.LINEAGE_AUDIT_ORIGIN,
                new={"broken_seq": report.broken_seq, "problem": report.problem, "run": run.pk},
            )
    if not report.ok:
        alarm.sound(run)
    alarm.refresh()
    return run


def _check_signed_decisions(log_key: bytes, *, after: int, checkpointed: int) -> None:
    """Each signed decision after event #``after`` must prove itself: its own fields, the release it is
    about and its actor rebuild the statement the trusted key signed, and no signature is used twice.

    This is what holds in the window no checkpoint covers yet: a correctly chained event added by an
    insider needs the signing key to pass. A decision recorded before events carried their statement
    is vouched for by the checkpoints only, so one that no checkpoint covers must carry it.
    """
    seen: dict[str, int] = {}
    events = (
        AuditEvent.objects.filter(action__in=vocabulary.SIGNED_DECISIONS, seq__gt=after)
        .order_by("seq")
        .values_list("seq", "actor", "action", "object_key", "new")
    )
    for seq, actor, action, key, new in events.iterator():
        if not isinstance(new, dict) or "signed_at" not in new:
            if seq > checkpointed:
                raise _Broken(
                    f"event #{seq} ({action} of {key} by {actor}) carries no signed statement and no checkpoint "
                    "covers it: it was not recorded by a signature",
                    seq,
                )
            continue
        try:
            signature = verifier.check_signed_decision(
                log_key, release=key, approver=actor, decision=vocabulary.SIGNED_DECISIONS[action], signed=new
            )
        except verifier.VerificationError as exc:
            raise _Broken(f"event #{seq} is forged: {exc}", seq) from exc
        if signature in seen:
            raise _Broken(f"event #{seq} repeats the signed decision of event #{seen[signature]}", seq)
        seen[signature] = seq
    if after and seen:
        earlier = (
            AuditEvent.objects.filter(
                action__in=vocabulary.SIGNED_DECISIONS, seq__lte=after, new__signature__in=list(seen)
            )
            .values_list("seq", "new__signature")
            .first()
        )
        if earlier is not None:
            raise _Broken(
                f"event #{seen[earlier[1]]} repeats the signed decision of event #{earlier[0]}", seen[earlier[1]]
            )


def _resume_point(log_key: bytes, notes: list[str]) -> Verification | None:
    state = Verification.objects.select_related("checkpoint").first()
    if state is None:
        notes.append("no earlier verification to resume from: the whole log was walked")
        return None
    try:
        body, _ = verifier.open_checkpoint(state.checkpoint.note, log_key)
        edge = merkle.CompactRange(state.size, [bytes.fromhex(h) for h in state.edge])
        intact = body.size == state.size and edge.root() == body.root and log.head_hash(state.size) == state.head_hash
    except (verifier.VerificationError, ValueError, log.LogBroken):
        intact = False
    if not intact:
        notes.append(f"the log changed at or before event #{state.size}, verified earlier: the whole log was walked")
        return None
    return state


def _signed_checkpoints(log_key: bytes, files: list[Path], *, above: int) -> list[SignedCheckpoint]:
    """Every checkpoint from ``above`` up, from the database and the checkpoint logs, its signature checked."""
    by_size: dict[int, SignedCheckpoint] = {}
    for row in Checkpoint.objects.filter(size__gte=above).order_by("size"):
        by_size[row.size] = SignedCheckpoint(row.size, _check_row(row, log_key), row=row)
    for path in files:
        if not path.exists():
            continue
        try:
            notes = checkpoints.read_log(path)
        except (OSError, UnicodeDecodeError, verifier.VerificationError) as exc:
            raise _Broken(f"the checkpoint log {path} cannot be read: {exc}") from exc
        for note in notes:
            try:
                body = verifier.parse_checkpoint(verifier.parse_note(note).text)
            except verifier.VerificationError as exc:
                raise _Broken(f"the checkpoint log {path} holds something that is not a checkpoint: {exc}") from exc
            if body.size < above:
                continue
            try:
                verifier.open_checkpoint(note, log_key)
            except verifier.VerificationError as exc:
                raise _Broken(f"checkpoint {body.size} in {path} is not signed by the trusted key: {exc}") from exc
            known = by_size.setdefault(body.size, SignedCheckpoint(body.size, body.root))
            if known.root != body.root:
                raise _Broken(f"{known} and checkpoint {body.size} in {path} sign different roots: the log forked")
            known.files.append(path)
    return [by_size[size] for size in sorted(by_size)]


def _check_row(row: Checkpoint, log_key: bytes) -> bytes:
    if not row.note:
        # Issued before checkpoints were signed notes: a hex signature over the legacy text.
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(log_key).verify(bytes.fromhex(row.signature), row.legacy_message())
        except (InvalidSignature, ValueError) as exc:
            raise _Broken(f"checkpoint {row.size} is not signed by the trusted key") from exc
        return bytes.fromhex(row.root_hash)
    try:
        body, _ = verifier.open_checkpoint(row.note, log_key)
    except verifier.VerificationError as exc:
        raise _Broken(f"checkpoint {row.size} is not signed by the trusted key: {exc}") from exc
    if body.size != row.size or body.root.hex() != row.root_hash:
        raise _Broken(f"checkpoint {row.size}: its row says size {row.size} root {row.root_hash}, its signed note not")
    return body.root


def _walk(signed: list[SignedCheckpoint], start: Verification | None) -> Report:
    """Re-walk the events (from ``start``), comparing the recomputed root at each checkpoint's size."""
    size = start.size if start else 0
    edge = merkle.CompactRange(size, [bytes.fromhex(h) for h in start.edge] if start else [])
    ahead = [c for c in signed if c.size > size]
    if start is None and ahead and ahead[0].size == 0 and ahead[0].root != merkle.EMPTY_ROOT:
        raise _Broken(f"{ahead[0]} does not sign the empty tree")
    ahead = [c for c in ahead if c.size > 0]
    matched = size
    head = start.head_hash if start else log.GENESIS_HASH
    walked = 0
    saved_edge: list[bytes] = list(edge.hashes)
    saved_head = head
    try:
        for digest in log.walk_chain(after=size, head=head, read_ahead=True):
            edge.append(merkle.leaf_hash(bytes.fromhex(digest)))
            walked += 1
            if ahead and edge.size == ahead[0].size:
                checkpoint = ahead.pop(0)
                if edge.root() != checkpoint.root:
                    seq = _first_rewritten(matched, checkpoint)
                    if seq is None:
                        raise _Broken(
                            f"events #{matched + 1} to #{checkpoint.size} do not hash to the root {checkpoint} signed",
                            matched + 1,
                        )
                    raise _Broken(f"event #{seq} is not the one {checkpoint} signed: it was rewritten", seq)
                matched = checkpoint.size
                saved_edge, saved_head = list(edge.hashes), digest
    except log.LogBroken as broken:
        covering = next((c for c in ahead if c.size >= broken.seq), None)
        against = f"it contradicts {covering}" if covering else "no checkpoint covers it yet"
        raise _Broken(f"{broken.problem}; {against}", broken.seq) from broken
    if ahead:
        missing = edge.size + 1
        raise _Broken(f"event #{missing} is missing (the log ends at #{edge.size}); it contradicts {ahead[0]}", missing)
    newest = signed[-1] if signed else None
    if newest is not None and newest.row is not None and matched == newest.size and matched > size:
        Verification.objects.create(
            checkpoint=newest.row,
            size=matched,
            edge=[h.hex() for h in saved_edge],
            head_hash=saved_head,
            verified_at=timezone.now(),
            incremental=start is not None,
        )
    return Report(
        events=walked,
        checkpoints=len(signed),
        newest=newest.size if newest else 0,
        pending=edge.size - (newest.size if newest else 0),
        resumed_from=start.size if start else None,
    )


def _first_rewritten(matched: int, checkpoint: SignedCheckpoint) -> int | None:
    """The first event after ``matched`` whose leaf differs from the stored tree, when the stored tree
    still hashes to the signed root (and so holds the leaves as they were signed)."""
    try:
        if tree.root(checkpoint.size) != checkpoint.root:
            return None
    except tree.TreeNotStored:
        return None
    seq = matched
    while seq < checkpoint.size:
        upto = min(seq + 10_000, checkpoint.size)
        leaves = TreeNode.objects.filter(level=0, index__gte=seq, index__lt=upto).values_list("index", "hash")
        signed_leaves = {index: bytes(value) for index, value in leaves}
        hashes = AuditEvent.objects.filter(seq__gt=seq, seq__lte=upto).order_by("seq").values_list("seq", "hash")
        for event_seq, digest in hashes:
            if merkle.leaf_hash(bytes.fromhex(digest)) != signed_leaves.get(event_seq - 1):
                return int(event_seq)
        seq = upto
    return None


def _check_consistency(signed: list[SignedCheckpoint]) -> None:
    """The stored tree must prove each checkpoint extends the one before (what witnesses are served)."""
    stored = tree.stored_size()
    for old, new in itertools.pairwise(signed):
        if new.size > stored:
            return
        proof = tree.consistency_proof(old.size, new.size)
        if not merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
            raise _Broken(f"the stored tree does not prove {new} extends {old}: its hashes were changed", old.size + 1)


def _check_rows_kept(signed: list[SignedCheckpoint]) -> None:
    for checkpoint in signed:
        if checkpoint.row is None:
            raise _Broken(f"{checkpoint} is missing from the database: checkpoint rows were deleted")
