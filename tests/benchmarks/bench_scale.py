"""Issue 12 at ten times the large set, on PostgreSQL: 100,000 releases, 1,000,000 runs, 5,000 endpoints,
500,000 deployments and 10,000,000 audit events.

Prints, with the load average at the time:

- one release's evidence export at 10,000,000 events (its checkpoint signed, each of its events' inclusion
  proof read from the stored tree; goal < 2 s): the first, on a cold cache, and the median of seven; the
  bundle's audit events and proofs checked offline;
- every page of bench_pages, median server time (goal < 100 ms each, none growing with the data); the
  dataset version page with 100,000 runs on it (goal < 200 ms);
- the trace API of bench_trace_api (gunicorn, 2 workers, fresh connections), median and p95; without
  MLflow's anchor, whose store of a million runs would take longer to fill than the rest of the run;
- ``audit_verify`` over the 10,000,000 events, with BENCH_SCALE_VERIFY=1 (about five minutes).

Needs BENCH_DATABASE_URL (``postgres://postgres@127.0.0.1:5432/lineage_bench``): the database
``lineage_bench_scale`` is generated once and kept, with the signing key and checkpoint log under
var/bench/scale (delete both to start over). The audit events are written by ``audit_events.generate``,
which stores exactly what the application's append path would; the export itself runs in a transaction
that is rolled back, so the kept database stays as generated.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.benchmarks import bench_pages, bench_trace_api, servers
from tests.benchmarks.common import load_average

ROOT = Path(__file__).resolve().parents[2]
SCALE = 10
EVENTS = 10_000_000
CHECKPOINT_EVERY = 10_000
SHARED_RUNS = 100_000
EXPORTS = 7
VAR_DIR = ROOT / "var" / "bench" / "scale"
MODELS = bench_pages.MODELS


def _database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith("postgres"):
        return ""
    base, _, _ = url.rpartition("/")
    return f"{base}/lineage_bench_scale"


# The 10,000,000 events -----------------------------------------------------------------------------


def scale_events(total: int) -> Iterator[Any]:
    """What the 10x set's history would have logged, oldest first, over two years: each release created
    and submitted, each run recorded, each deployment, then each run's details changing again and again
    (as metrics arrive): ``total`` events."""
    from tests.benchmarks.audit_events import Event

    sizes = bench_pages.large_sizes(SCALE)
    releases, runs = sizes["releases"], sizes["runs"]
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=730)
    step = datetime.timedelta(days=730) / total
    count = 0

    def event(action: str, object_type: str, object_key: str, actor: str, new: Any) -> Event:
        nonlocal count
        count += 1
        return Event(start + step * count, actor, action, object_type, object_key, new=new)

    def release_name(i: int) -> str:
        return f"model-{i % MODELS}-v{1 + i // MODELS}"

    for i in range(releases):
        yield event("release.created", "release", release_name(i), "lead", {"model_version": i})
        yield event("release.submitted", "release", release_name(i), "lead", {"lineage_digest": f"sha256:{i:064x}"})
    for r in range(runs):
        yield event("run.created", "run", f"mlflow:{r:032x}", "mlflow-sync:mlflow", {"status": "FINISHED"})
    per_endpoint = sizes["deployments"] // sizes["endpoints"]
    per_model = releases // MODELS
    for e in range(sizes["endpoints"]):
        for k in range(per_endpoint):
            name = release_name(e % MODELS + MODELS * ((k * per_model) // per_endpoint))
            yield event("deployment.recorded", "endpoint", f"endpoint-{e}", "ci", {"release": name, "kind": "deploy"})
    r = 0
    while count < total:
        metrics = {"auc": 0.8 + (count % 97) / 1000, "step": count // runs}
        yield event("run.updated", "run", f"mlflow:{r:032x}", "mlflow-sync:mlflow", {"metrics": metrics})
        r = (r + 1) % runs


# Inside the child process with the scale database's settings -----------------------------------------


def _prepare() -> dict[str, Any]:
    """Migrate, then generate what is missing: the 10x set, then the audit events (each in one transaction)."""
    from django.core.management import call_command
    from django.db import connection

    from audit import checkpoints, log
    from audit.models import Checkpoint
    from releases.models import Release
    from tests.benchmarks.audit_events import generate

    call_command("migrate", verbosity=0)
    took: dict[str, Any] = {}
    if not Release.objects.exists():
        began = time.perf_counter()
        bench_pages._generate_large(SCALE)
        bench_pages._settle(connection)
        took["data set"] = round(time.perf_counter() - began)
    if log.last_seq() < EVENTS and not Checkpoint.objects.filter(size__gt=CHECKPOINT_EVERY).exists():
        began = time.perf_counter()
        # The set's own few events (its lead's role) signed first, as the generator continues a signed log.
        checkpoints.issue_checkpoint()
        generate(scale_events(EVENTS - log.last_seq()), every=CHECKPOINT_EVERY, rebuild_indexes=True)
        took["audit events"] = round(time.perf_counter() - began)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
            cursor.execute("VACUUM ANALYZE audit_treenode")
        took["vacuum analyze"] = round(time.perf_counter() - began) - took["audit events"]
    if log.last_seq() < EVENTS:
        raise SystemExit(f"the kept log holds {log.last_seq():,} events, not {EVENTS:,}: drop lineage_bench_scale")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        took["database GB"] = round(cursor.fetchone()[0] / 1e9, 1)
    return took


def _export() -> dict[str, Any]:
    """The evidence bundle of the newest release of model-0 (its run's events spread over the whole log,
    its endpoints' deployment events among them), exported by an auditor ``EXPORTS`` times, each in a
    transaction rolled back afterwards; the audit part of the last bundle checked offline."""
    import io
    import zipfile

    from django.contrib.auth.models import Group, User
    from django.db import transaction

    from audit import log, signing, verifier
    from releases.evidence import export_evidence
    from releases.models import Release
    from releases.roles import AUDITORS

    release = Release.objects.get(name=f"model-0-v{bench_pages.large_sizes(SCALE)['releases'] // MODELS}")
    times = []
    for _ in range(EXPORTS):
        with transaction.atomic():
            auditor = User.objects.create_user("bench-auditor")
            auditor.groups.add(Group.objects.get_or_create(name=AUDITORS)[0])
            size = log.last_seq()
            began = time.perf_counter()
            _, data = export_evidence(release, by=auditor)
            times.append(time.perf_counter() - began)
            transaction.set_rollback(True)
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    # The audit part, as the offline verifier checks it: the set's approvals carry made-up signatures.
    checked = verifier.check_audit_events(files, signing.public_key_raw())
    return {
        "release": release.name,
        "events": size,
        "checked": checked,
        "first": round(times[0], 3),
        "median": round(statistics.median(times), 3),
    }


def _pages() -> dict[str, Any]:
    return bench_pages.time_pages(bench_pages.page_list("large", SCALE, SHARED_RUNS))


def _verify() -> dict[str, Any]:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    began = time.perf_counter()
    call_command("audit_verify", stdout=out, stderr=out)
    return {"seconds": round(time.perf_counter() - began, 1), "output": out.getvalue().strip()}


STEPS = {"prepare": _prepare, "export": _export, "pages": _pages, "verify": _verify}


def _child(step: str) -> None:
    import django

    django.setup()
    print(json.dumps(STEPS[step]()))


# The parent -------------------------------------------------------------------------------------------


def _run(step: str, url: str) -> Any:
    env = servers.settings_env(url, VAR_DIR)
    if step == "pages":
        # As bench_pages: the development settings' static files (no collectstatic), DEBUG turned off to measure.
        env["DEBUG"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench_scale", step],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ensure_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    url = _database_url()
    if not url:
        print("   skipped: set BENCH_DATABASE_URL=postgres://... (this benchmark measures PostgreSQL)", flush=True)
        return
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _ensure_database(url)
    sizes = bench_pages.large_sizes(SCALE)
    print(f"   10x set: {', '.join(f'{v:,} {k}' for k, v in sizes.items())}, {EVENTS:,} audit events", flush=True)
    started = time.monotonic()
    took = _run("prepare", url)
    print(f"   ready in {time.monotonic() - started:.0f} s: {took}; load {load_average()}", flush=True)

    export = _run("export", url)
    print(
        f"   export_evidence of {export['release']} at {export['events']:,} events: first {export['first']:.2f} s, "
        f"median of {EXPORTS} {export['median']:.2f} s (goal < 2 s); load {load_average()}",
        flush=True,
    )
    print("   offline check of its audit events: " + "; ".join(export["checked"]), flush=True)

    pages = _run("pages", url)
    print(f"\n   Page median server time, ms ({bench_pages.RUNS} requests each), load {load_average()}\n")
    print("   | page | 10x set |\n   |---|---:|")
    for label, ms in pages.items():
        print(f"   | {label} | {ms} |")
    slow = [label for label, ms in pages.items() if ms >= bench_pages.goal_ms(label)]
    print(
        f"\n   over the goal (100 ms; 200 for the version 100,000 runs used): {', '.join(slow) or 'none'}\n", flush=True
    )

    print(f"   trace API (no MLflow anchor at this size); load {load_average()}", flush=True)
    bench_trace_api.measure(url, servers.settings_env(url, VAR_DIR), anchor=None)

    if os.environ.get("BENCH_SCALE_VERIFY") == "1":
        verified = _run("verify", url)
        print(f"   audit_verify over the whole log: {verified['seconds']} s; load {load_average()}", flush=True)
        print("   " + verified["output"].replace("\n", "\n   "), flush=True)
    else:
        print("   audit_verify not run (BENCH_SCALE_VERIFY=1 runs it: about five minutes)", flush=True)
    print(f"   load average at the end: {load_average()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in STEPS:
        _child(sys.argv[1])
    else:
        main()
