"""Build real chain rows through the services, with small readable defaults."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.utils import timezone

from audit.log import SystemActor
from releases import lineage, services
from releases.models import (
    Approval,
    Commit,
    DatasetVersion,
    Deployment,
    Endpoint,
    GitRepository,
    ModelVersion,
    Release,
    TrackingServer,
)
from tests.conftest import PASSWORD

SYSTEM = SystemActor("test-setup")


def sha_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - a fake git sha, not security


def content_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class World:
    """A repository, a tracking server and helpers to add each link of the chain."""

    repo: GitRepository
    server: TrackingServer
    _clock: datetime.datetime = field(default_factory=lambda: timezone.now() - datetime.timedelta(days=30))

    @classmethod
    def create(cls) -> World:
        repo = services.add_git_repository(
            name="churn",
            url="/srv/git/churn.git",
            commit_url_template="https://git.example.com/churn/commit/{sha}",
            by=SYSTEM,
        ).repository
        server = services.add_mlflow_server(
            name="mlflow", tracking_uri="http://127.0.0.1:5000", ui_url="http://mlflow.example.com", by=SYSTEM
        ).server
        assert repo is not None
        assert server is not None
        return cls(repo=repo, server=server)

    def tick(self, hours: int = 1) -> datetime.datetime:
        self._clock += datetime.timedelta(hours=hours)
        return self._clock

    def commit(self, label: str) -> Commit:
        sha = sha_of(label)
        services.record_commits(
            self.repo,
            [services.CommitData(sha=sha, author_name="Dev", message=f"{label}\n\nbody", committed_at=self.tick())],
        )
        return Commit.objects.get(sha=sha)

    def tag(self, name: str, commit: Commit) -> None:
        services.record_tag(self.repo, name=name, sha=commit.sha, by=SYSTEM)

    def dataset(self, key: str) -> DatasetVersion:
        name, _, version = key.partition(":")
        created, _ = services.register_dataset_version(
            name=name,
            version=int(version),
            uri=f"s3://data/{name}/{version}.parquet",
            content_hash=content_hash(key),
            by=SYSTEM,
        )
        return created

    def model_version(
        self,
        key: str,
        *,
        commit: Commit | None = None,
        datasets: tuple[str, ...] = (),
        feature_view: str = "customer_features_v5",
        user: str = "data-scientist",
        metrics: dict[str, float] | None = None,
    ) -> ModelVersion:
        name, _, version = key.partition("/")
        run_id = sha_of(key)[:32]
        services.record_run(
            self.server,
            services.RunData(
                run_id=run_id,
                experiment_id="1",
                experiment_name="churn",
                name=f"{name}-{version}",
                status="FINISHED",
                user=user,
                start_time=self.tick(),
                params={"feature_view": feature_view, "max_depth": "6"},
                metrics=metrics or {"auc": 0.85},
                commit_sha=commit.sha if commit else "",
                feature_view=feature_view,
                datasets=[services.DatasetRef(key=d) for d in datasets],
            ),
            by=SYSTEM,
        )
        created, _ = services.register_model_version(
            self.server,
            services.ModelVersionData(
                name=name, version=int(version), source_run_id=run_id, artifact_uri=f"models:/{run_id}"
            ),
            by=SYSTEM,
        )
        return created

    def release(
        self, name: str, model_version: ModelVersion, *, by: User, report: str = "s3://reports/r.html", tag: str = ""
    ) -> Release:
        release, _ = services.create_release(
            name=name, model_version=model_version.key, git_tag=tag, validation_report_uri=report, by=by
        )
        return release

    def approved_release(self, name: str, model_version: ModelVersion, *, by: User, approver: User) -> Release:
        release, _ = services.create_release(
            name=name, model_version=model_version.key, validation_report_uri="s3://reports/r.html", submit=True, by=by
        )
        approve(release, by=approver)
        release.refresh_from_db()
        return release

    def endpoint(self, name: str = "churn-scoring", environment: str = "production") -> Endpoint:
        return services.create_endpoint(name=name, environment=environment, by=SYSTEM)

    def deploy(self, endpoint: Endpoint, release: Release, *, by: User, hours_ago: float | None = None) -> Deployment:
        """Deploy now, or (``hours_ago``) record the world's past as a backfill, before the release existed."""
        if hours_ago is None:
            return services.record_deployment(endpoint, release, by=by, source=Deployment.Source.API)
        at = timezone.now() - datetime.timedelta(hours=hours_ago)
        return services.record_deployment(
            endpoint, release, by=by, source=Deployment.Source.API, at=at, backfill=True, reason="the world's history"
        )

    def full_release(self, number: int, *, by: User, approver: User, dataset: str = "churn-train:17") -> Release:
        """An approved churn release with a complete chain (commit, dataset, features, run, model version)."""
        self.dataset(dataset)
        commit = self.commit(f"churn v{number}")
        mv = self.model_version(f"churn-model/{number}", commit=commit, datasets=(dataset,))
        return self.approved_release(f"churn-v{number}", mv, by=by, approver=approver)


def approve(
    release: Release,
    *,
    by: User,
    password: str = PASSWORD,
    meaning: str = "Approved for production",
    comment: str = "",
    expected_digest: str | None = None,
) -> Approval:
    """Sign an approval as a lead who reviewed the chain as it stands now (unless told which digest)."""
    digest = lineage.trace(release.name).digest if expected_digest is None else expected_digest
    return services.sign_release(
        release,
        by=by,
        decision="approve",
        password=password,
        meaning=meaning,
        comment=comment,
        expected_digest=digest,
    )


def reject(release: Release, *, by: User, comment: str, password: str = PASSWORD) -> Approval:
    """Sign a rejection of the chain as it stands now."""
    return services.sign_release(
        release,
        by=by,
        decision="reject",
        password=password,
        comment=comment,
        expected_digest=lineage.trace(release.name).digest,
    )
