"""Audit log checks at scale: audit_verify over a million events, resuming from the last verified
checkpoint, and proofs read from the stored tree.

- 1,000,000 events written with ``record_many`` (as a sync writes them), a checkpoint signed after
  every 10,000 (each extends the stored tree and appends to the checkpoint log file);
- ``audit_verify`` over all of it: every event rehashed, the chain, the root recomputed at each of
  the 100 checkpoints, each signature and each consistency proof (target < 60 s on PostgreSQL);
- 10,000 new events, their checkpoint, then ``audit_verify --incremental`` (target < 1 s);
- an inclusion proof and a consistency proof at 1,000,000 events, read from the stored tree.

Uses its own database: SQLite under a temporary directory, or, with BENCH_DATABASE_URL
(``postgres://.../lineage_bench``), a PostgreSQL database it drops and re-creates. Sizes:
BENCH_AUDIT_EVENTS, BENCH_AUDIT_CHECKPOINT_EVERY, BENCH_AUDIT_NEW.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import time

from tests.benchmarks.bench_sync import _django, _timed

EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
EVERY = int(os.environ.get("BENCH_AUDIT_CHECKPOINT_EVERY", "10000"))
NEW = int(os.environ.get("BENCH_AUDIT_NEW", "10000"))


def _append(count: int, start: int) -> None:
    from django.db import transaction

    from audit import checkpoints, log
    from audit.log import SystemActor

    with transaction.atomic():
        log.record_many(
            [
                log.PendingEvent("run.created", "run", f"{start + i:032x}", new={"status": "FINISHED", "n": start + i})
                for i in range(count)
            ],
            actor=SystemActor("bench"),
        )
    with transaction.atomic():
        checkpoints.issue_checkpoint()


def _verify(*args: str) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=out)
    return out.getvalue()


def _median_ms(fn: object, runs: int = 25) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _export_one_release() -> float:
    """A release with its chain, approval and a deployment recorded on top of the big log, then its
    evidence bundle exported (a checkpoint signed over the whole log included) and verified."""
    import zipfile

    from django.contrib.auth.models import Group, User

    from audit import signing, verifier
    from releases.evidence import export_evidence
    from releases.roles import AUDITORS, ML_LEADS, RELEASE_MANAGERS
    from tests.conftest import PASSWORD
    from tests.factories import World

    people = {}
    for username, role in (("bench-lead", ML_LEADS), ("bench-relman", RELEASE_MANAGERS), ("bench-auditor", AUDITORS)):
        people[username] = User.objects.create_user(username, password=PASSWORD, first_name=username)
        people[username].groups.add(Group.objects.get_or_create(name=role)[0])
    world = World.create()
    release = world.full_release(42, by=people["bench-relman"], approver=people["bench-lead"])
    endpoint = world.endpoint()
    world.deploy(endpoint, release, by=people["bench-relman"], hours_ago=1)
    started = time.monotonic()
    _, data = export_evidence(release, by=people["bench-auditor"])
    elapsed = time.monotonic() - started
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())
    return elapsed


def main() -> None:
    _django()
    from django.db import connection

    from audit import checkpoints, merkle, tree
    from audit.models import Checkpoint

    print(f"   database {connection.vendor} {connection.settings_dict['NAME']}", flush=True)

    def fill() -> None:
        for start in range(0, EVENTS, EVERY):
            _append(min(EVERY, EVENTS - start), start)

    _timed(f"write {EVENTS:,} events, a checkpoint every {EVERY:,}", fill)
    assert Checkpoint.objects.count() == -(-EVENTS // EVERY)
    if connection.vendor == "postgresql":
        # What autovacuum would have done by then; the fill is faster than its default delay.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audit_auditevent; ANALYZE audit_treenode; ANALYZE audit_checkpoint")

    full_s, out = _timed(f"audit_verify over {EVENTS:,} events", _verify)
    print("   " + out.replace("\n", "\n   ").rstrip(), flush=True)
    assert out.startswith(f"audit log intact: {EVENTS} events verified")

    _timed(f"write {NEW:,} new events and sign their checkpoint", lambda: _append(NEW, EVENTS))
    incremental_s, out = _timed(f"audit_verify --incremental over {NEW:,} new events", lambda: _verify("--incremental"))
    print("   " + out.replace("\n", "\n   ").rstrip(), flush=True)
    assert out.startswith(f"audit log intact: {NEW} events verified since checkpoint {EVENTS}")

    size = EVENTS + NEW
    newest = Checkpoint.objects.get(size=size)
    root = bytes.fromhex(newest.root_hash)
    index = random.Random(7).randrange(size)
    proof = tree.inclusion_proof(index, size)
    leaf = tree.read([(0, index)])[(0, index)]
    assert merkle.verify_inclusion(index, size, leaf, proof, root)
    picks = random.Random(11)
    inclusion_ms = _median_ms(lambda: tree.inclusion_proof(picks.randrange(size), size))
    tlog_ms = _median_ms(lambda: checkpoints.inclusion_proofs([picks.randrange(size) + 1], newest))
    consistency_ms = _median_ms(lambda: tree.consistency_proof(EVENTS // 2, size))
    print(
        f"   inclusion proof at {size:,} events: {inclusion_ms:.1f} ms median "
        f"({len(proof)} hashes; as a c2sp tlog-proof with its checkpoint {tlog_ms:.1f} ms); "
        f"consistency proof {EVENTS // 2:,} -> {size:,}: {consistency_ms:.1f} ms",
        flush=True,
    )
    export_s = _export_one_release()
    print(
        f"   export_evidence of one release at {Checkpoint.objects.order_by('-size').first().size:,} events: "
        f"{export_s:.2f} s (target < 2 s)",
        flush=True,
    )
    print(
        f"   audit_verify {full_s:.1f} s for {EVENTS:,} events (target < 60 s); "
        f"incremental {incremental_s:.2f} s for {NEW:,} (target < 1 s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
