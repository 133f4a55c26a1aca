"""Evidence for a period at scale: a quarter with 1,000 releases deployed to production, exported as one
bundle, then checked by the auditor's own verify.py (target: the export in under 60 s).

The world is written through the services a sync and a pipeline use (commits, runs with their datasets,
model versions, releases created and submitted, deployments and rollbacks with their audit events), on
top of a log that already holds BENCH_EVIDENCE_NOISE unrelated events. Only the approvals are written in
bulk, each with its genuine Ed25519 signature over its statement: signing a thousand releases through
the page would measure password hashing, not evidence.

Uses its own database: SQLite under a temporary directory, or, with BENCH_DATABASE_URL
(``postgres://.../lineage_bench``), a PostgreSQL database it drops and re-creates. Sizes:
BENCH_EVIDENCE_RELEASES (1000), BENCH_EVIDENCE_NOISE (100000).
"""

from __future__ import annotations

import datetime
import os
import time

from tests.benchmarks.bench_sync import _django, _timed

RELEASES = int(os.environ.get("BENCH_EVIDENCE_RELEASES", "1000"))
NOISE = int(os.environ.get("BENCH_EVIDENCE_NOISE", "100000"))
ENDPOINTS = 20
# One release in ten is replaced half an hour later by an earlier one again (as a backfill records it).
ROLLBACK_EVERY = 10


def _world(start: datetime.datetime) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import transaction

    from audit import log, signing
    from audit.log import SystemActor
    from releases import lineage, services
    from releases.models import Approval, Deployment, Release
    from releases.roles import AUDITORS, ML_LEADS, RELEASE_MANAGERS

    system = SystemActor("bench")
    people = {}
    for username, role in (("lead", ML_LEADS), ("relman", RELEASE_MANAGERS), ("auditor", AUDITORS)):
        people[username] = User.objects.create_user(username, first_name=username.title())
        people[username].groups.add(Group.objects.get_or_create(name=role)[0])

    for begin in range(0, NOISE, 10_000):
        with transaction.atomic():
            log.record_many(
                [
                    log.PendingEvent("run.created", "run", f"noise-{n:08d}", new={"status": "FINISHED"})
                    for n in range(begin, min(NOISE, begin + 10_000))
                ],
                actor=system,
            )
    repo = services.add_git_repository(name="churn", url="/srv/git/churn.git", by=system).repository
    server = services.add_mlflow_server(name="mlflow", tracking_uri="http://127.0.0.1:5000", by=system).server
    assert repo is not None
    assert server is not None
    shas = [f"{n + 1:040x}" for n in range(RELEASES)]
    services.record_commits(
        repo,
        [
            services.CommitData(sha=sha, author_name="Dev", message=f"change {n}", committed_at=start)
            for n, sha in enumerate(shas)
        ],
    )
    for n in range(RELEASES // 10 + 1):
        services.register_dataset_version(
            name="churn-train",
            version=n + 1,
            uri=f"s3://data/churn/{n + 1}",
            content_hash=f"sha256:{n:064x}",
            by=system,
        )
    runs = [
        services.RunData(
            run_id=f"{n:032x}",
            experiment_id="1",
            experiment_name="churn",
            name=f"train-{n}",
            status="FINISHED",
            user="data-scientist",
            start_time=start,
            params={"feature_view": f"customer_features_v{1 + n % 7}", "max_depth": "6"},
            metrics={"auc": 0.8 + (n % 97) / 1000},
            commit_sha=shas[n],
            feature_view=f"customer_features_v{1 + n % 7}",
            datasets=[services.DatasetRef(key=f"churn-train:{n // 10 + 1}")],
        )
        for n in range(RELEASES)
    ]
    for begin in range(0, RELEASES, 500):
        services.record_runs(server, runs[begin : begin + 500], by=system)
        services.register_model_versions(
            server,
            [
                services.ModelVersionData(
                    name="churn-model", version=n + 1, source_run_id=f"{n:032x}", artifact_uri=f"models:/{n:032x}"
                )
                for n in range(begin, min(RELEASES, begin + 500))
            ],
            by=system,
        )
    relman, lead = people["relman"], people["lead"]
    for n in range(RELEASES):
        release, _ = services.create_release(
            name=f"churn-v{n + 1}", model_version=f"churn-model/{n + 1}", validation_report_uri="s3://r.html", by=relman
        )
        services.submit_release(release, by=relman)
    approvals = []
    signed_at = start + datetime.timedelta(hours=1)
    for trace in map(lineage.Trace, lineage.traced_releases()):
        approval = Approval(
            release=trace.release,
            approver=lead,
            approver_name="Lena Lead",
            decision=Approval.Decision.APPROVED,
            meaning="Approved for production",
            signed_digest=trace.digest,
            signed_chain=trace.chain(),
            signed_at=signed_at,
        )
        approval.signature = signing.sign(approval.statement())
        approvals.append(approval)
    Approval.objects.bulk_create(approvals, batch_size=500)
    Release.objects.update(state=Release.State.APPROVED, state_changed_at=signed_at)
    endpoints = [
        services.create_endpoint(name=f"churn-{e}", environment="production", by=system) for e in range(ENDPOINTS)
    ]
    releases = list(Release.objects.order_by("pk"))
    for n, release in enumerate(releases):
        at = start + datetime.timedelta(hours=2, minutes=90 * n)
        endpoint = endpoints[n % ENDPOINTS]
        services.record_deployment(
            endpoint, release, by=relman, source=Deployment.Source.API, at=at, backfill=True, reason="weekly release"
        )
        if n % ROLLBACK_EVERY == ROLLBACK_EVERY - 1 and n >= ENDPOINTS:
            previous = releases[n - ENDPOINTS]
            services.record_deployment(
                endpoint,
                previous,
                by=relman,
                source=Deployment.Source.UI,
                at=at + datetime.timedelta(minutes=30),
                backfill=True,
                reason="restored: AUC alert",
            )


def main() -> None:
    _django()
    from django.db import connection, transaction

    from audit import checkpoints, signing, verifier
    from audit.models import AuditEvent
    from releases import evidence, lineage
    from releases.models import Deployment

    print(f"   database {connection.vendor} {connection.settings_dict['NAME']}; load {os.getloadavg()[0]:.2f}")
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    _timed(f"write {RELEASES:,} releases and their deployments through the services", lambda: _world(start))
    with transaction.atomic():
        checkpoints.issue_checkpoint()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    period = lineage.Period.checked(start, start + datetime.timedelta(days=92))
    changes = lineage.changes_in(period, ["production"]).count()
    print(f"   {AuditEvent.objects.count():,} audit events; {changes:,} deployments and rollbacks in the quarter")
    assert Deployment.objects.filter(kind="deploy").count() >= RELEASES

    from django.contrib.auth.models import User

    auditor = User.objects.get(username="auditor")
    began = time.monotonic()
    filename, data, *_ = evidence.export_period_evidence(period, ["production"], by=auditor)
    export_s = time.monotonic() - began
    print(f"   export_evidence of the quarter: {export_s:.1f} s, {len(data) / 1e6:.1f} MB ({filename})", flush=True)

    import io
    import zipfile

    began = time.monotonic()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    checked = verifier.verify_bundle(files, trusted_key_pem=signing.public_key_pem().encode())
    verify_s = time.monotonic() - began
    print(f"   verify.py over it: {verify_s:.1f} s; {checked[-1]}", flush=True)
    print(
        f"   {RELEASES:,} releases: export {export_s:.1f} s (target < 60 s), verify {verify_s:.1f} s; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
