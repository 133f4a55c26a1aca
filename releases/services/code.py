"""Writes for the code link: repositories, commits, tags."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit import log, pgcopy
from audit.log import Actor
from releases.errors import InvalidInput
from releases.models import Commit, GitRepository, GitTag
from releases.models.code import sha_validator
from releases.services import refusals
from releases.services.validation import check


@dataclass(frozen=True)
class CommitData:
    sha: str
    author_name: str = ""
    author_email: str = ""
    authored_at: datetime.datetime | None = None
    committed_at: datetime.datetime | None = None
    message: str = ""
    parents: tuple[str, ...] = ()


_SHA_LINES = re.compile(r"[0-9a-f]{40}(?:\n[0-9a-f]{40})*")
# Each line a commit's parents: none, or shas separated by spaces.
_PARENT_LINES = re.compile(r"(?:[0-9a-f]{40}(?: [0-9a-f]{40})*)?(?:\n(?:[0-9a-f]{40}(?: [0-9a-f]{40})*)?)*")
_COMMIT_COLUMNS = (
    "repository",
    "sha",
    "author_name",
    "author_email",
    "authored_at",
    "committed_at",
    "message",
    "parents",
)


@dataclass
class CommitColumns:
    """Commits as columns, the shape ``git log``'s stream is cut into: whole lists of shas, names and
    messages are checked and escaped with a few string operations over each column, not field by field.

    Times are ISO 8601 text as git prints it ("" for none); ``parents`` are space-separated shas.
    """

    shas: list[str]
    parents: list[str]
    author_names: list[str]
    author_emails: list[str]
    authored_at: list[str]
    committed_at: list[str]
    messages: list[str]

    def __post_init__(self) -> None:
        if self.shas and not _SHA_LINES.fullmatch("\n".join(self.shas)):
            for sha in self.shas:
                check(sha_validator, sha, "commit sha")

    def __len__(self) -> int:
        return len(self.shas)

    @classmethod
    def of(cls, commits: Iterable[CommitData]) -> CommitColumns:
        items = list(commits)

        def when(value: datetime.datetime | None) -> str:
            return value.isoformat() if value else ""

        return cls(
            shas=[c.sha for c in items],
            parents=[" ".join(c.parents) for c in items],
            author_names=[c.author_name for c in items],
            author_emails=[c.author_email for c in items],
            authored_at=[when(c.authored_at) for c in items],
            committed_at=[when(c.committed_at) for c in items],
            messages=[c.message for c in items],
        )

    def commits(self) -> list[CommitData]:
        def when(value: str) -> datetime.datetime | None:
            return datetime.datetime.fromisoformat(value) if value else None

        return [
            CommitData(
                sha=sha,
                author_name=name,
                author_email=email,
                authored_at=when(authored),
                committed_at=when(committed),
                message=message,
                parents=tuple(parents.split()),
            )
            for sha, parents, name, email, authored, committed, message in zip(
                self.shas,
                self.parents,
                self.author_names,
                self.author_emails,
                self.authored_at,
                self.committed_at,
                self.messages,
                strict=True,
            )
        ]

    def copy_text(self, repository: GitRepository) -> str:
        """The commits as lines of COPY's text format, in the order of ``_COMMIT_COLUMNS``."""
        if not self.shas:
            return ""
        parents = self.parents
        if _PARENT_LINES.fullmatch("\n".join(parents)):
            # Parents as git prints them, plain shas: their JSON is just quotes and commas.
            parents_json = ['["' + p.replace(" ", '","') + '"]' if p else "[]" for p in parents]
        else:
            parents_json = [pgcopy.text_value(json.dumps(p.split())) for p in parents]
        rows = zip(
            [str(repository.pk)] * len(self.shas),
            self.shas,
            pgcopy.text_column([name[:200] for name in self.author_names]),
            pgcopy.text_column([email[:200] for email in self.author_emails]),
            [value or pgcopy.NULL for value in self.authored_at],
            [value or pgcopy.NULL for value in self.committed_at],
            pgcopy.text_column(self.messages),
            parents_json,
            strict=True,
        )
        return "\n".join(map("\t".join, rows)) + "\n"


def record_commits(repository: GitRepository, commits: Iterable[CommitData]) -> int:
    """Insert commits not yet known (commits never change, so known ones are skipped). Returns new count."""
    return record_commit_columns(repository, [CommitColumns.of(commits)])


def record_commit_columns(repository: GitRepository, chunks: Iterable[CommitColumns]) -> int:
    """``record_commits`` for commits given as columns, chunk by chunk. Returns the new count.

    ``chunks`` may be a stream: on PostgreSQL each chunk is copied into the table while the next is still
    being read (from ``git log``), so reading and writing overlap. The usual case, none of them stored
    yet, costs that one COPY; when one is already stored (a sync cut off half-way, or another writer),
    the COPY is rolled back and only those not stored are inserted, found by diffing against the shas
    of the chunks, never by counting the table.
    """
    taken: list[CommitColumns] = []
    stream = iter(chunks)
    if connection.vendor == "postgresql":
        import psycopg

        with transaction.atomic():
            try:
                with transaction.atomic():
                    pgcopy.copy_text(
                        Commit, _COMMIT_COLUMNS, (chunk.copy_text(repository) for chunk in _kept(stream, taken))
                    )
                return sum(map(len, taken))
            except (IntegrityError, psycopg.IntegrityError):
                taken.extend(stream)
                return _insert_unknown(repository, taken)
    taken.extend(stream)
    with transaction.atomic():
        return _insert_unknown(repository, taken)


def _kept(chunks: Iterator[CommitColumns], taken: list[CommitColumns]) -> Iterator[CommitColumns]:
    """Each chunk, also kept in ``taken`` for a second attempt."""
    for chunk in chunks:
        taken.append(chunk)
        yield chunk


def _insert_unknown(repository: GitRepository, chunks: list[CommitColumns]) -> int:
    fresh = _unknown_commits(repository, [item for chunk in chunks for item in chunk.commits()])
    Commit.objects.bulk_create(
        [
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
            for item in fresh
        ],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return len(fresh)


def _unknown_commits(repository: GitRepository, commits: list[CommitData]) -> list[CommitData]:
    """The commits of the list not stored for the repository yet, each sha once, in list order."""
    shas = sorted({item.sha for item in commits})
    known: set[str] = set()
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of thousands: nothing to render or plan per sha.
        table = connection.ops.quote_name(Commit._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT sha FROM {table} WHERE repository_id = %s AND sha = ANY(%s)", [repository.pk, shas])  # noqa: S608 - table name from the model
            known.update(row[0] for row in cursor.fetchall())
    else:
        for start in range(0, len(shas), 5000):
            chunk = shas[start : start + 5000]
            known.update(Commit.objects.filter(repository=repository, sha__in=chunk).values_list("sha", flat=True))
    fresh: list[CommitData] = []
    for item in commits:
        if item.sha not in known:
            known.add(item.sha)
            fresh.append(item)
    return fresh


def record_tag(repository: GitRepository, *, name: str, sha: str, by: Actor) -> tuple[GitTag, str]:
    """Record where a tag points. Returns (tag, "created" | "unchanged" | "moved").

    A tag that now points elsewhere is flagged on the row and in the audit log; the commit it
    pointed to when first seen stays, because releases were approved against that commit.
    """
    outcome = record_tags(repository, {name: sha}, by=by)[name]
    if isinstance(outcome, InvalidInput):
        raise outcome
    return outcome


def record_tags(
    repository: GitRepository, tags: Mapping[str, str], *, by: Actor
) -> dict[str, tuple[GitTag, str] | InvalidInput]:
    """``record_tag`` for many tags (name -> sha) in one transaction and a fixed number of queries: the
    commits they name, the tags already stored, the new tags in one insert and their events in one append.

    A tag naming a commit that is not synced is that tag's outcome (an InvalidInput), not a refusal of all.
    """
    key = f"{repository}:{next(iter(tags))}" if len(tags) == 1 else f"{repository}:*"
    refusals.check_role("git_tag.record_refused", by=by, object_type="git_tag", object_key=key, to="record a Git tag")
    outcomes: dict[str, tuple[GitTag, str] | InvalidInput] = {}
    with transaction.atomic():
        # No ordering: an ORDER BY lets PostgreSQL walk another index of a large, freshly loaded commit
        # table instead of looking each sha up in the (repository, sha) unique index.
        commits = {
            commit.sha: commit
            for commit in Commit.objects.filter(repository=repository, sha__in=sorted(set(tags.values()))).order_by()
        }
        stored = {
            tag.name: tag
            for tag in GitTag.objects.select_for_update()
            .filter(repository=repository, name__in=sorted(tags))
            .select_related("commit")
        }
        created: list[GitTag] = []
        events: list[log.PendingEvent] = []
        for name, sha in sorted(tags.items()):
            commit = commits.get(sha)
            if commit is None:
                outcomes[name] = InvalidInput(
                    f"tag {name} points to {sha[:12]}, which is not a synced commit of {repository}"
                )
                continue
            key = f"{repository}:{name}"
            tag = stored.get(name)
            if tag is None:
                tag = GitTag(repository=repository, name=name, commit=commit)
                created.append(tag)
                events.append(log.PendingEvent("git_tag.created", "git_tag", key, new={"sha": sha}))
                outcomes[name] = (tag, "created")
                continue
            now_points_to = "" if tag.commit.sha == sha else sha
            if now_points_to == tag.moved_to_sha:
                outcomes[name] = (tag, "unchanged")
                continue
            old = {"sha": tag.commit.sha, "moved_to": tag.moved_to_sha}
            tag.moved_to_sha = now_points_to
            tag.moved_at = timezone.now() if now_points_to else None
            tag.save(update_fields=["moved_to_sha", "moved_at"])
            action = "git_tag.moved" if now_points_to else "git_tag.restored"
            events.append(
                log.PendingEvent(
                    action, "git_tag", key, old=old, new={"sha": tag.commit.sha, "moved_to": now_points_to}
                )
            )
            outcomes[name] = (tag, "moved")
        GitTag.objects.bulk_create(created)
        log.record_many(events, actor=by)
    return outcomes


def resolve_commit(sha_or_prefix: str) -> Commit | None:
    """The synced commit a full sha or a unique prefix (7+ hex) names, else None."""
    sha = sha_or_prefix.strip().lower()
    if len(sha) < 7 or any(c not in "0123456789abcdef" for c in sha):
        return None
    if len(sha) == 40:
        return Commit.objects.filter(sha=sha).select_related("repository").first()
    matches = list(Commit.objects.by_prefix(sha).select_related("repository")[:2])
    return matches[0] if len(matches) == 1 else None


def resolve_commits(shas: Iterable[str]) -> dict[str, Commit | None]:
    """``resolve_commit`` for many shas or prefixes with a few queries; keys are the values as given."""
    wanted = {raw: raw.strip().lower() for raw in shas}
    valid = {sha for sha in wanted.values() if 7 <= len(sha) <= 40 and all(c in "0123456789abcdef" for c in sha)}
    full = sorted(sha for sha in valid if len(sha) == 40)
    prefixes = sorted(valid - set(full))
    found: dict[str, Commit] = {}
    for start in range(0, len(full), 500):
        # Meta ordering (newest first), as resolve_commit's .first() sees it, when forks share a sha.
        for commit in Commit.objects.filter(sha__in=full[start : start + 500]).select_related("repository"):
            found.setdefault(commit.sha, commit)
    matches: dict[str, list[Commit]] = {}
    lengths = sorted({len(prefix) for prefix in prefixes})
    wanted_prefixes = set(prefixes)
    for start in range(0, len(prefixes), 200):
        query = Q()
        for prefix in prefixes[start : start + 200]:
            query |= Q(sha__startswith=prefix)
        for commit in Commit.objects.filter(query).select_related("repository"):
            for length in lengths:
                if commit.sha[:length] in wanted_prefixes:
                    matches.setdefault(commit.sha[:length], []).append(commit)
    # A prefix must name exactly one commit; an ambiguous one stays unresolved, as in resolve_commit.
    found.update({prefix: hits[0] for prefix, hits in matches.items() if len({c.pk for c in hits}) == 1})
    return {raw: found.get(sha) for raw, sha in wanted.items()}
