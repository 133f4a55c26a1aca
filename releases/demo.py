"""The demo world of DESIGN.md's story, built through the same services every other door uses.

A real git repository (commits and tags), real data files hashed into dataset versions, runs,
model versions 40-42 of churn-model, releases approved by a second person, and deployments:
churn-v42 is live on churn-scoring, trained on churn-train:18. fraud-v8 lacks its dataset link.
Running it twice changes nothing.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from audit.log import SystemActor
from releases import services
from releases.models import Deployment, GitRepository, Release, TrackingServer
from releases.roles import AUDITORS, ML_LEADS, ON_CALL, RELEASE_MANAGERS

DEMO = SystemActor("demo-builder")
FRAUD_RUN_ID = "f89b2e4d6a1c3f5e709b2e4d6a1c3f5e"

PEOPLE = (
    ("lead", "Lena", "Lead", (ML_LEADS,), False),
    ("lead2", "Omar", "Second", (ML_LEADS,), False),
    ("auditor", "Ada", "Auditor", (AUDITORS,), False),
    ("oncall", "Otto", "Oncall", (ON_CALL,), False),
    ("admin", "Sam", "Admin", (ML_LEADS, RELEASE_MANAGERS), True),
)


@dataclass(frozen=True)
class ChurnRelease:
    number: int
    dataset: int
    feature_view: str
    auc: float
    message: str
    days_ago: float


CHURN = (
    ChurnRelease(40, 16, "customer_features_v4", 0.851, "Train churn model on Q1 data", 20),
    ChurnRelease(41, 17, "customer_features_v4", 0.858, "Add tenure buckets to churn model", 9),
    ChurnRelease(42, 18, "customer_features_v5", 0.862, "Use partner label mapping v2", 1.5),
)


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)
    return result.stdout.strip()


def _people(password: str) -> dict[str, User]:
    users = {}
    for username, first, last, roles, superuser in PEOPLE:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@example.com"}
        )
        user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        user.groups.add(*(Group.objects.get_or_create(name=role)[0] for role in roles))
        users[username] = user
    ci, _ = User.objects.get_or_create(username="ci", defaults={"first_name": "CI", "last_name": "pipeline"})
    ci.set_unusable_password()
    ci.save()
    ci.groups.add(Group.objects.get_or_create(name=RELEASE_MANAGERS)[0])
    users["ci"] = ci
    return users


def _git_repository(root: Path) -> Path:
    """A real repository with one commit per release and tags model-churn-v40..v42."""
    repo = root / "churn-model"
    if (repo / ".git").exists():
        return repo
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Dana Scientist")
    _git(repo, "config", "user.email", "dana@example.com")
    for item in CHURN:
        (repo / "train.py").write_text(
            f"# churn model\nFEATURE_VIEW = {item.feature_view!r}\nRELEASE = {item.number}\n"
        )
        when = (timezone.now() - datetime.timedelta(days=item.days_ago + 1)).isoformat()
        _git(repo, "add", "train.py")
        _git(
            repo,
            "commit",
            "-q",
            "-m",
            item.message,
            env={"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "HOME": str(root)},
        )
        _git(repo, "tag", f"model-churn-v{item.number}")
    (repo / "fraud.py").write_text("# fraud model, data not yet versioned\n")
    _git(repo, "add", "fraud.py")
    _git(repo, "commit", "-q", "-m", "Fraud model v8", env={"HOME": str(root)})
    return repo


def _record_git(repo_dir: Path) -> GitRepository:
    repo = services.add_repository(
        name="churn-model",
        url=str(repo_dir),
        commit_url_template="https://git.example.com/ml/churn-model/commit/{sha}",
        by=DEMO,
    )
    log = _git(repo_dir, "log", "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%cI%x1f%P%x1f%s")
    commits = []
    for line in log.splitlines():
        sha, name, email, authored, committed, parents, subject = line.split("\x1f")
        commits.append(
            services.CommitData(
                sha=sha,
                author_name=name,
                author_email=email,
                authored_at=datetime.datetime.fromisoformat(authored),
                committed_at=datetime.datetime.fromisoformat(committed),
                message=subject,
                parents=tuple(parents.split()),
            )
        )
    services.record_commits(repo, commits)
    for line in _git(repo_dir, "tag", "--format=%(refname:short) %(objectname)").splitlines():
        tag, sha = line.split()
        services.record_tag(repo, name=tag, sha=sha, by=DEMO)
    return repo


def _data_files(root: Path) -> dict[int, Path]:
    """Small but real CSV files; version 18 carries the partner's changed label mapping."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    files = {}
    for version in (16, 17, 18):
        path = data / f"churn-train-{version}.csv"
        if not path.exists():
            label = {0: "stay", 1: "churn"} if version < 18 else {0: "churn", 1: "stay"}
            rows = ["customer_id,tenure_months,monthly_spend,label"]
            rows += [f"{i},{(i * 7) % 60},{(i * 13) % 200}.00,{label[(i + version) % 2]}" for i in range(version * 50)]
            path.write_text("\n".join(rows) + "\n")
        files[version] = path
    eval_path = data / "churn-eval-3.csv"
    if not eval_path.exists():
        eval_path.write_text("customer_id,label\n" + "".join(f"{i},stay\n" for i in range(200)))
    files[0] = eval_path
    return files


def build(*, password: str, root: Path, say: Callable[[str], None] = print) -> None:
    """Build (or complete) the demo world under ``root``."""
    users = _people(password)
    repo_dir = _git_repository(root / "git")
    repo = _record_git(repo_dir)
    files = _data_files(root)
    for version in (16, 17, 18):
        content_hash, size = services.hash_file(files[version])
        services.register_dataset_version(
            name="churn-train",
            version=version,
            uri=files[version].resolve().as_uri(),
            content_hash=content_hash,
            size_bytes=size,
            by=DEMO,
        )
    eval_hash, eval_size = services.hash_file(files[0])
    services.register_dataset_version(
        name="churn-eval",
        version=3,
        uri=files[0].resolve().as_uri(),
        content_hash=eval_hash,
        size_bytes=eval_size,
        by=DEMO,
    )
    server = services.add_tracking_server(
        name="mlflow", tracking_uri=(root / "mlruns").resolve().as_uri(), ui_url="http://127.0.0.1:5000", by=DEMO
    )
    _churn_releases(repo, server, users, password)
    _fraud_release(repo, server, users)
    _deployments(users)
    say(f"Demo world ready: {Release.objects.count()} releases, {Deployment.objects.count()} deployments.")


def _churn_releases(repo: GitRepository, server: TrackingServer, users: dict[str, User], password: str) -> None:
    for item in CHURN:
        tag = repo.tags.select_related("commit").get(name=f"model-churn-v{item.number}")
        started = timezone.now() - datetime.timedelta(days=item.days_ago + 0.5)
        run_id = f"{item.number:02d}c4a1e0b7d3f25968a0b1c2d3e4f5a6"
        services.record_run(
            server,
            services.RunData(
                run_id=run_id,
                experiment_id="7",
                experiment_name="churn",
                name=f"churn-v{item.number}",
                status="FINISHED",
                user="dana",
                start_time=started,
                end_time=started + datetime.timedelta(minutes=42),
                params={
                    "feature_view": item.feature_view,
                    "max_depth": "6" if item.number < 42 else "8",
                    "learning_rate": "0.05",
                },
                metrics={"auc": item.auc, "precision_at_10": round(item.auc - 0.21, 3)},
                tags={"git_commit": tag.commit.sha[:7], "dataset_version": f"churn-train:{item.dataset},churn-eval:3"},
                commit_sha=tag.commit.sha[:7],
                feature_view=item.feature_view,
                datasets=[
                    services.DatasetRef(key=f"churn-train:{item.dataset}", context="training"),
                    services.DatasetRef(key="churn-eval:3", context="evaluation"),
                ],
            ),
            by=DEMO,
        )
        services.register_model_version(
            server,
            services.ModelVersionData(
                name="churn-model",
                version=item.number,
                source_run_id=run_id,
                artifact_uri=f"mlflow-artifacts:/7/{run_id}/artifacts/model",
                created_at=started + datetime.timedelta(hours=1),
            ),
            by=DEMO,
        )
        release, _ = services.create_release(
            name=f"churn-v{item.number}",
            model_version=f"churn-model/{item.number}",
            git_tag=f"model-churn-v{item.number}",
            validation_report_uri=f"s3://ml-reports/churn/v{item.number}/validation.html",
            by=users["ci"],
        )
        if release.state == Release.State.DRAFT:
            services.submit_release(release, by=users["ci"])
        if release.state == Release.State.PENDING:
            services.approve_release(
                release,
                by=users["lead"],
                password=password,
                meaning="Approved for production",
                comment="Metrics reviewed.",
            )


def _fraud_release(repo: GitRepository, server: TrackingServer, users: dict[str, User]) -> None:
    head = repo.commits.order_by("-committed_at").first()
    services.record_run(
        server,
        services.RunData(
            run_id=FRAUD_RUN_ID,
            experiment_id="9",
            experiment_name="fraud",
            name="fraud-v8",
            status="FINISHED",
            user="sam",
            start_time=timezone.now() - datetime.timedelta(days=3),
            params={"feature_view": "transaction_features_v2"},
            metrics={"auc": 0.912},
            tags={"git_commit": head.sha if head else ""},
            commit_sha=head.sha if head else "",
            feature_view="transaction_features_v2",
        ),
        by=DEMO,
    )
    services.register_model_version(
        server,
        services.ModelVersionData(
            name="fraud-model", version=8, source_run_id=FRAUD_RUN_ID, artifact_uri="mlflow-artifacts:/9/fraud/model"
        ),
        by=DEMO,
    )
    release, _ = services.create_release(
        name="fraud-v8",
        model_version="fraud-model/8",
        validation_report_uri="s3://ml-reports/fraud/v8/validation.html",
        by=users["ci"],
    )
    if release.state == Release.State.DRAFT:
        services.submit_release(release, by=users["ci"])


def _deployments(users: dict[str, User]) -> None:
    production = services.create_endpoint(
        name="churn-scoring",
        environment="production",
        registered_model="churn-model",
        mlflow_alias="production",
        by=DEMO,
    )
    staging = services.create_endpoint(
        name="churn-scoring-staging",
        environment="staging",
        registered_model="churn-model",
        mlflow_alias="staging",
        by=DEMO,
    )
    fraud = services.create_endpoint(
        name="fraud-scoring-staging", environment="staging", registered_model="fraud-model", by=DEMO
    )
    with transaction.atomic():
        if Deployment.objects.filter(endpoint__in=[production, staging, fraud]).exists():
            return
    now = timezone.now()
    for item in CHURN:
        release = Release.objects.get(name=f"churn-v{item.number}")
        at = now - datetime.timedelta(days=item.days_ago)
        services.record_deployment(
            staging, release, by=users["ci"], source=Deployment.Source.API, at=at - datetime.timedelta(hours=6)
        )
        services.record_deployment(
            production, release, by=users["ci"], source=Deployment.Source.API, at=at, reason="Scheduled release"
        )
    services.record_deployment(
        fraud,
        Release.objects.get(name="fraud-v8"),
        by=users["ci"],
        source=Deployment.Source.API,
        at=now - datetime.timedelta(days=2),
    )
