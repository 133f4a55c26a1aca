"""Writes for the code link: repositories, commits, tags."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit import log
from audit.log import Actor
from releases.errors import InvalidInput
from releases.models import Commit, GitRepository, GitTag
from releases.models.code import name_validator, sha_validator
from releases.services.validation import check


def add_repository(*, name: str, url: str, commit_url_template: str = "", by: Actor) -> GitRepository:
    """Register a Git repository to sync from (idempotent on name)."""
    check(name_validator, name, "repository name")
    with transaction.atomic():
        repo, created = GitRepository.objects.get_or_create(
            name=name, defaults={"url": url, "commit_url_template": commit_url_template}
        )
        if not created:
            if repo.url != url:
                raise InvalidInput(f"repository {name} already exists with URL {repo.url}")
            return repo
        log.record(
            "git_repository.added",
            actor=by,
            object_type="git_repository",
            object_key=name,
            new={"url": url, "commit_url_template": commit_url_template},
        )
    return repo


@dataclass(frozen=True)
class CommitData:
    sha: str
    author_name: str = ""
    author_email: str = ""
    authored_at: datetime.datetime | None = None
    committed_at: datetime.datetime | None = None
    message: str = ""
    parents: tuple[str, ...] = ()


def record_commits(repository: GitRepository, commits: list[CommitData]) -> int:
    """Insert commits not yet known (commits never change, so known ones are skipped). Returns new count."""
    for item in commits:
        check(sha_validator, item.sha, "commit sha")
    rows = [
        Commit(
            repository=repository,
            sha=item.sha,
            author_name=item.author_name[:200],
            author_email=item.author_email[:200],
            authored_at=item.authored_at,
            committed_at=item.committed_at,
            message=item.message,
            parents=list(item.parents),
        )
        for item in commits
    ]
    with transaction.atomic():
        before = Commit.objects.filter(repository=repository).count()
        Commit.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
        return Commit.objects.filter(repository=repository).count() - before


def record_tag(repository: GitRepository, *, name: str, sha: str, by: Actor) -> tuple[GitTag, str]:
    """Record where a tag points. Returns (tag, "created" | "unchanged" | "moved").

    A tag that now points elsewhere is flagged on the row and in the audit log; the commit it
    pointed to when first seen stays, because releases were approved against that commit.
    """
    with transaction.atomic():
        commit = Commit.objects.filter(repository=repository, sha=sha).first()
        if commit is None:
            raise InvalidInput(f"tag {name} points to {sha[:12]}, which is not a synced commit of {repository}")
        tag = (
            GitTag.objects.select_for_update().filter(repository=repository, name=name).select_related("commit").first()
        )
        if tag is None:
            tag = GitTag.objects.create(repository=repository, name=name, commit=commit)
            log.record(
                "git_tag.created", actor=by, object_type="git_tag", object_key=f"{repository}:{name}", new={"sha": sha}
            )
            return tag, "created"
        now_points_to = "" if tag.commit.sha == sha else sha
        if now_points_to == tag.moved_to_sha:
            return tag, "unchanged"
        old = {"sha": tag.commit.sha, "moved_to": tag.moved_to_sha}
        tag.moved_to_sha = now_points_to
        tag.moved_at = timezone.now() if now_points_to else None
        tag.save(update_fields=["moved_to_sha", "moved_at"])
        log.record(
            "git_tag.moved" if now_points_to else "git_tag.restored",
            actor=by,
            object_type="git_tag",
            object_key=f"{repository}:{name}",
            old=old,
            new={"sha": tag.commit.sha, "moved_to": now_points_to},
        )
        return tag, "moved"


def resolve_commit(sha_or_prefix: str) -> Commit | None:
    """The synced commit a full sha or a unique prefix (7+ hex) names, else None."""
    sha = sha_or_prefix.strip().lower()
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha):
        return None
    if len(sha) == 40:
        return Commit.objects.filter(sha=sha).select_related("repository").first()
    matches = list(Commit.objects.by_prefix(sha).select_related("repository")[:2])
    return matches[0] if len(matches) == 1 else None
