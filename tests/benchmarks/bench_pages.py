"""Median server time of every page, on the demo world and on a large generated data set.

    python -m tests.benchmarks.bench_pages            # both data sets, SQLite files under var/bench/
    DATABASE_URL=postgres://.../lineage python -m tests.benchmarks.bench_pages   # databases lineage_bench_*
    BENCH_PAGES_SHARED_RUNS=100000 python -m tests.benchmarks.bench_pages       # the shared version's size

Each data set is measured in its own process with its own database, so the numbers of one never
include the caches of the other. The large set is generated once with bulk_create and reused.

The large set also holds a dataset version shared by many runs (an evaluation set every run scores
on): its page lists the most of everything downstream. It is used by BENCH_PAGES_SHARED_RUNS runs
(10,000 by default, the size issue 12 measured; at most the set's 100,000), each size its own dataset
``shared-N`` added to the large set the first time that size is asked for.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.benchmarks.common import batches, load_average

ROOT = Path(__file__).resolve().parents[2]
RUNS = 15
MODELS = 50
DATASETS = 50
VERSIONS_PER_DATASET = 20
SHARED_RUNS = int(os.environ.get("BENCH_PAGES_SHARED_RUNS", "10000"))
# Rows written per bulk_create call: a million runs are never all in memory at once.
CHUNK = 50_000


def large_sizes(scale: int = 1) -> dict[str, int]:
    """The large set's sizes; ``scale`` 10 is issue 12's 10x set (bench_scale)."""
    return {
        "releases": 10_000 * scale,
        "runs": 100_000 * scale,
        "endpoints": 500 * scale,
        "deployments": 50_000 * scale,
    }


LARGE = large_sizes()


def _bulk_create(model: type[Any], rows: Iterable[Any]) -> None:
    for batch in batches(rows, CHUNK):
        model.objects.bulk_create(batch, batch_size=5000)


def _environment(dataset: str) -> dict[str, str]:
    env = dict(os.environ, DEBUG="1")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        base, _, _name = url.rpartition("/")
        env["DATABASE_URL"] = f"{base}/lineage_bench_{dataset}"
    else:
        env.pop("DATABASE_URL", None)
        env["LINEAGE_VAR_DIR"] = str(ROOT / "var" / "bench" / dataset)
    env.pop("REDIS_URL", None)
    # The benchmark makes and fills its own database as one role.
    env.pop("DATABASE_MIGRATE_URL", None)
    return env


def _ensure_postgres_database(env: dict[str, str]) -> None:
    url = env.get("DATABASE_URL", "")
    if not url:
        return
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# Inside the measuring process ---------------------------------------------------------------


def _generate_large(scale: int = 1) -> None:
    """The large set (``large_sizes(scale)``), written with bulk_create (no services: speed over audit for a
    benchmark), a chunk at a time, rows named by their keys rather than held as model instances."""
    from django.contrib.auth.models import Group, User
    from django.db import transaction
    from django.db.models import OuterRef, Subquery
    from django.utils import timezone

    from releases.models import (
        Approval,
        Commit,
        Dataset,
        DatasetVersion,
        DatasetVersionEndpoint,
        Deployment,
        Endpoint,
        EndpointModel,
        ExperimentRun,
        FeaturePipeline,
        FeaturePipelineVersion,
        GitRepository,
        ModelVersion,
        ModelVersionDataset,
        RegisteredModel,
        Release,
        RunDatasetInput,
        TrackingServer,
    )
    from releases.roles import ML_LEADS

    large = large_sizes(scale)
    now = timezone.now()
    start = now - datetime.timedelta(days=730)
    runs_per_release = large["runs"] // large["releases"]
    with transaction.atomic():
        lead = User.objects.create_user("lead", password="bench-password", first_name="Lena", last_name="Lead")
        lead.groups.add(Group.objects.get_or_create(name=ML_LEADS)[0])
        repo = GitRepository.objects.create(
            name="monorepo", url="/srv/git/mono.git", commit_url_template="https://git.example.com/c/{sha}"
        )
        server = TrackingServer.objects.create(name="mlflow", tracking_uri="http://mlflow", ui_url="http://mlflow")
        shas = [f"{i:040x}" for i in range(1, large["releases"] + 1)]
        _bulk_create(
            Commit,
            (
                Commit(
                    repository=repo,
                    sha=sha,
                    author_name="Dev",
                    committed_at=start + datetime.timedelta(minutes=60 * i),
                    message=f"change {i}",
                    parents=[shas[i - 1]] if i else [],
                )
                for i, sha in enumerate(shas)
            ),
        )
        commits = list(Commit.objects.order_by("committed_at").values_list("pk", flat=True))
        datasets = Dataset.objects.bulk_create(Dataset(name=f"dataset-{d}") for d in range(DATASETS))
        DatasetVersion.objects.bulk_create(
            DatasetVersion(
                dataset=ds,
                version=v,
                uri=f"s3://data/{ds.name}/{v}",
                content_hash="sha256:" + f"{d * 100 + v:064x}",
            )
            for d, ds in enumerate(datasets)
            for v in range(1, VERSIONS_PER_DATASET + 1)
        )
        versions = list(DatasetVersion.objects.order_by("pk").values_list("pk", flat=True))
        pipelines = FeaturePipeline.objects.bulk_create(FeaturePipeline(name=f"features_{p}") for p in range(10))
        FeaturePipelineVersion.objects.bulk_create(
            FeaturePipelineVersion(pipeline=p, version=v) for p in pipelines for v in range(1, 11)
        )
        features = list(FeaturePipelineVersion.objects.order_by("pk").values_list("pk", flat=True))
        _bulk_create(
            ExperimentRun,
            (
                ExperimentRun(
                    server=server,
                    run_id=f"{r:032x}",
                    experiment_id=str(r % MODELS),
                    name=f"run-{r}",
                    status="FINISHED",
                    user="ds",
                    start_time=start + datetime.timedelta(minutes=7 * r / scale),
                    params={"max_depth": str(4 + r % 5), "feature_view": f"features_{r % 10}_v{1 + r % 10}"},
                    metrics={"auc": 0.8 + (r % 97) / 1000, "logloss": 0.3 - (r % 89) / 1000},
                    commit_sha=shas[r % len(shas)],
                    commit_id=commits[r % len(commits)],
                    feature_pipeline_version_id=features[r % len(features)],
                )
                for r in range(large["runs"])
            ),
        )
        runs = list(ExperimentRun.objects.order_by("pk").values_list("pk", flat=True))
        _bulk_create(
            RunDatasetInput,
            (
                RunDatasetInput(run_id=run, dataset_version_id=versions[i % len(versions)], context="training")
                for i, run in enumerate(runs)
            ),
        )
        models = RegisteredModel.objects.bulk_create(RegisteredModel(name=f"model-{m}") for m in range(MODELS))
        _bulk_create(
            ModelVersion,
            (
                ModelVersion(
                    registered_model=models[i % MODELS],
                    version=1 + i // MODELS,
                    run_id=runs[i * runs_per_release],
                    source_run_id=f"{i * runs_per_release:032x}",
                    created_at=start + datetime.timedelta(minutes=70 * i / scale),
                )
                for i in range(large["releases"])
            ),
        )
        mvs = list(ModelVersion.objects.order_by("pk").values_list("pk", flat=True))
        # What the services keep beside each model version: the dataset version its run trained on.
        _bulk_create(
            ModelVersionDataset,
            (
                ModelVersionDataset(
                    model_version_id=mv, dataset_version_id=versions[(i * runs_per_release) % len(versions)]
                )
                for i, mv in enumerate(mvs)
            ),
        )
        states = [Release.State.APPROVED] * 8 + [Release.State.PENDING, Release.State.RETIRED]
        _bulk_create(
            Release,
            (
                Release(
                    name=f"model-{i % MODELS}-v{1 + i // MODELS}",
                    model_version_id=mv,
                    commit_id=commits[i],
                    state=states[i % len(states)],
                    created_by=lead,
                    validation_report_uri=f"s3://reports/{i}.html",
                )
                for i, mv in enumerate(mvs)
            ),
        )
        releases = list(Release.objects.order_by("pk").only("pk", "state", "created_at"))
        for i, release in enumerate(releases):
            release.created_at = start + datetime.timedelta(minutes=70 * i / scale)
        Release.objects.bulk_update(releases, ["created_at"], batch_size=5000)
        _bulk_create(
            Approval,
            (
                Approval(
                    release=r,
                    approver=lead,
                    approver_name="Lena Lead",
                    decision="approved",
                    meaning="Approved for production",
                    signed_digest="sha256:" + "0" * 64,
                    signed_chain={},
                    signed_at=r.created_at,
                )
                for r in releases
                if r.state == Release.State.APPROVED
            ),
        )
        endpoints = Endpoint.objects.bulk_create(
            Endpoint(
                name=f"endpoint-{e}",
                environment="production" if e % 2 == 0 else "staging",
                registered_model=models[e % MODELS],
            )
            for e in range(large["endpoints"])
        )
        by_model: dict[int, list[Release]] = {}
        for i, release in enumerate(releases):
            by_model.setdefault(i % MODELS, []).append(release)
        per_endpoint = large["deployments"] // large["endpoints"]
        _bulk_create(
            Deployment,
            (
                Deployment(
                    endpoint=endpoint,
                    release=release,
                    deployed_at=release.created_at + datetime.timedelta(hours=1 + e % 5),
                    actor="ci",
                    kind="deploy",
                    source="api",
                )
                for e, endpoint in enumerate(endpoints)
                for release in (
                    by_model[e % MODELS][(k * len(by_model[e % MODELS])) // per_endpoint] for k in range(per_endpoint)
                )
            ),
        )
        # What the deployment service keeps beside each deployment: where each model's releases went.
        went = (
            Deployment.objects.order_by()
            .values_list("release__model_version__registered_model_id", "endpoint_id")
            .distinct()
        )
        _bulk_create(EndpointModel, (EndpointModel(registered_model_id=m, endpoint_id=e) for m, e in went))
        # What each endpoint keeps as live now: what was live at ``now`` by the deployments' own rule.
        live = Deployment.objects.filter(endpoint_id=OuterRef("pk")).live_at(now)
        Endpoint.objects.update(
            live_deployment_now=Subquery(live.values("id")[:1]),
            live_release_now=Subquery(live.values("release_id")[:1]),
        )
        # And where each dataset version reached.
        reached = (
            Deployment.objects.order_by()
            .values_list("release__model_version__dataset_links__dataset_version_id", "endpoint_id")
            .filter(release__model_version__dataset_links__isnull=False)
            .distinct()
        )
        _bulk_create(
            DatasetVersionEndpoint,
            (
                DatasetVersionEndpoint(dataset_version_id=v, endpoint_id=e)
                for v, e in reached.iterator(chunk_size=CHUNK)
            ),
        )


def _settle(connection: Any) -> None:
    """What autovacuum gives a live PostgreSQL database after a bulk load: planner statistics, and the
    visibility map that lets a count read an index alone (autovacuum has vacuumed insert-only tables since
    PostgreSQL 13)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _generate_shared(runs: int, scale: int = 1) -> str:
    """A dataset version the first ``runs`` runs evaluated on (added once per size); returns its page."""
    from django.db import connection, transaction

    from releases import services
    from releases.models import Dataset, DatasetVersion, ExperimentRun, ModelVersion, RunDatasetInput

    most = large_sizes(scale)["runs"]
    if not 0 < runs <= most:
        raise SystemExit(f"the shared dataset version's runs must be from 1 to {most}, not {runs}")
    name = f"shared-{runs}"
    if not Dataset.objects.filter(name=name).exists():
        began = time.perf_counter()
        with transaction.atomic():
            version = DatasetVersion.objects.create(
                dataset=Dataset.objects.create(name=name),
                version=1,
                uri=f"s3://data/{name}/1",
                content_hash="sha256:" + f"{runs:064x}",
            )
            first = ExperimentRun.objects.order_by("pk").values_list("pk", flat=True)[:runs]
            RunDatasetInput.objects.bulk_create(
                (RunDatasetInput(run_id=run, dataset_version=version, context="evaluation") for run in first),
                batch_size=5000,
            )
            # As record_runs does when a run's inputs change: its model versions' links follow.
            services.keep_dataset_links(ModelVersion.objects.filter(run_id__in=first).values_list("pk", flat=True))
        _settle(connection)
        print(f"added {name}:1 in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return f"/datasets/{name}/1/"


def goal_ms(label: str) -> int:
    """The server time a page must stay under: 100 ms, and 200 for the dataset version so many runs used (whose
    goal issue 12 sets apart: its lists reach tens of thousands of runs, releases and endpoints)."""
    return 200 if label.startswith("dataset version used by") else 100


def page_list(dataset: str, scale: int = 1, shared_runs: int = SHARED_RUNS) -> list[tuple[str, str]]:
    """Every page, as (label, path), on the demo world or on the large set of ``large_sizes(scale)``."""
    from releases.models import Commit, ExperimentRun, Release

    if dataset == "demo":
        run = ExperimentRun.objects.get(name="churn-v42")
        return [
            ("board", "/"),
            ("release list", "/releases/"),
            ("release list, filtered", "/releases/?model=churn-model&state=approved"),
            ("trace", "/releases/churn-v42/"),
            ("compare", "/releases/compare/?a=churn-v41&b=churn-v42"),
            ("dataset version", "/datasets/churn-train/18/"),
            ("endpoint", "/endpoints/churn-scoring/"),
            ("endpoint, live at", "/endpoints/churn-scoring/?at=2020-01-01T00:00"),
            ("investigate", "/investigate/?endpoint=churn-scoring"),
            ("model", "/models/churn-model/"),
            ("run", f"/runs/{run.run_id}/"),
            ("commit", f"/commits/{run.commit_sha[:10]}/"),
            ("search", "/search/?q=nothing-matches"),
            ("search, partial name", "/search/?q=churn"),
            ("search, every run by one author", "/search/?q=dana"),
        ]
    newest = Release.objects.filter(model_version__registered_model__name="model-0").order_by("-created_at")
    latest, older = newest[0], newest[10]
    half = large_sizes(scale)["releases"] // 2
    middle = Release.objects.order_by("created_at")[half].created_at
    commit = Commit.objects.order_by("committed_at")[half]
    shared = _generate_shared(shared_runs, scale)
    # A page number past the last shows the last page.
    last_pages = "&".join(
        f"{name}=999999" for name in ("runs_page", "versions_page", "releases_page", "endpoints_page", "live_page")
    )
    return [
        ("board", "/"),
        ("release list", "/releases/"),
        ("release list, filtered", "/releases/?model=model-7&state=approved&page=3"),
        ("trace", f"/releases/{latest.name}/"),
        ("compare", f"/releases/compare/?a={older.name}&b={latest.name}"),
        ("dataset version", "/datasets/dataset-7/12/"),
        (f"dataset version used by {shared_runs:,} runs", shared),
        (f"dataset version used by {shared_runs:,} runs, last page of each list", f"{shared}?{last_pages}"),
        ("endpoint", "/endpoints/endpoint-0/"),
        ("endpoint, live at", f"/endpoints/endpoint-0/?at={middle:%Y-%m-%dT%H:%M}"),
        ("investigate", f"/investigate/?endpoint=endpoint-0&at={middle:%Y-%m-%dT%H:%M}"),
        ("model", "/models/model-0/"),
        ("run", f"/runs/{ExperimentRun.objects.order_by('pk')[5000 * scale].run_id}/"),
        ("commit", f"/commits/{commit.sha[:12]}/"),
        ("search", "/search/?q=nothing-matches"),
        ("search, partial name", "/search/?q=model-7-v"),
        ("search, every run by one author", "/search/?q=ds"),
    ]


def time_pages(pages: list[tuple[str, str]], username: str = "lead") -> dict[str, float]:
    """Median server time of each page in ms (``RUNS`` requests after two to warm up), as ``username``,
    with DEBUG off: no query log, as production runs."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.DEBUG = False
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username=username))
    results = {}
    for label, path in pages:
        for _ in range(2):
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
        timings = []
        for _ in range(RUNS):
            began = time.perf_counter()
            client.get(path)
            timings.append((time.perf_counter() - began) * 1000)
        results[label] = round(statistics.median(timings), 1)
    return results


def _measure(dataset: str) -> dict[str, Any]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    if not User.objects.filter(username="lead").exists():
        if dataset == "demo":
            from releases.demo.world import build

            build(password="bench-password", root=Path(settings.VAR_DIR) / "demo", say=lambda _line: None)
        else:
            began = time.perf_counter()
            _generate_large()
            _settle(connection)
            print(f"generated the large data set in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return {"vendor": connection.vendor, "pages": time_pages(page_list(dataset))}


def main(argv: list[str] | None = None) -> int:
    """Measure both data sets, each in a fresh process, and print a Markdown table."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--measure"]:
        print(json.dumps(_measure(args[1])))
        return 0
    found: dict[str, dict[str, Any]] = {}
    load_before = load_average()
    for dataset in ("demo", "large"):
        env = _environment(dataset)
        if "LINEAGE_VAR_DIR" in env:
            Path(env["LINEAGE_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        _ensure_postgres_database(env)
        done = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.bench_pages", "--measure", dataset],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        found[dataset] = json.loads(done.stdout.strip().splitlines()[-1])
    vendor = found["large"]["vendor"]
    print(f"\nPage median server time, ms ({RUNS} requests each, Django test client, {vendor})\n")
    print("| page | demo | large |")
    print("|---|---:|---:|")
    slow = []
    for label, large_ms in found["large"]["pages"].items():
        print(f"| {label} | {found['demo']['pages'].get(label, '—')} | {large_ms} |")
        if large_ms >= goal_ms(label):
            slow.append(label)
    print(
        f"\nLarge set: {', '.join(f'{v:,} {k}' for k, v in LARGE.items())}, "
        f"and a dataset version used by {SHARED_RUNS:,} of the runs."
    )
    # Shared machines vary: the load average (1, 5, 15 minutes) says how busy this one was.
    print(f"Load average before: {load_before}; after: {load_average()}")
    if slow:
        print(f"Over the target (100 ms; 200 for the dataset version so many runs used): {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lineage_site.settings")
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
