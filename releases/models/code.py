"""The code link: repositories, commits and tags."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import models

from audit import pgtriggers
from releases.models.base import GuardedModel
from releases.models.credentials import GitCredentials, env_field, file_field
from releases.web_links import validate_web_url

sha_validator = RegexValidator(r"^[0-9a-f]{40}$", "A commit sha is 40 lowercase hex characters.")
name_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "Use letters, digits, dot, dash and underscore; start with a letter or digit."
)


# The commit table's name, which the repository's trigger names before the model is defined.
COMMIT_TABLE = "releases_commit"


class GitRepository(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    url = models.CharField(max_length=500, help_text="Clone URL or local path.")
    commit_url_template = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_web_url],
        help_text="Web page of a commit, with {sha} in place of the sha, e.g. https://git.example.com/churn/commit/{sha}",
    )
    default_branch = models.CharField(max_length=100, blank=True)
    # Credentials: where the sync reads them, never the secrets (releases/models/credentials.py).
    token_env = env_field("HTTPS token")
    token_file = file_field("HTTPS token")
    ssh_key_file = file_field(
        "SSH key", what="Absolute path of the SSH private key on the worker (readable by its owner only)."
    )
    known_hosts_file = file_field(
        "known hosts", what="Absolute path of the known_hosts file the server's SSH host key is checked against."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "git repositories"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(token_env="") | models.Q(token_file=""), name="repository_token_from_one_place"
            ),
            models.CheckConstraint(
                condition=models.Q(token_env="", token_file="") | models.Q(ssh_key_file=""),
                name="repository_token_or_ssh_key",
            ),
            models.CheckConstraint(
                condition=models.Q(ssh_key_file="", known_hosts_file="")
                | (~models.Q(ssh_key_file="") & ~models.Q(known_hosts_file="")),
                name="repository_ssh_key_with_known_hosts",
            ),
        ]
        # Its commits' reference to it, checked per statement (Commit.repository).
        triggers = [
            pgtriggers.referenced_kept(
                "repository_keeps_its_commits", referencing_table=COMMIT_TABLE, column="repository_id"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> GitCredentials:
        return GitCredentials.of(self)

    @property
    def credential(self) -> str:
        """Which credential the sync presents, in words ("HTTPS token from $GIT_TOKEN"); never its value."""
        return self.credentials.describe()

    audit_type: ClassVar[str] = "git_repository"

    @property
    def audit_key(self) -> str:
        """How the audit log names this git repository."""
        return self.name

    def commit_url(self, sha: str) -> str:
        return self.commit_url_template.replace("{sha}", sha) if self.commit_url_template else ""


class CommitQuerySet(models.QuerySet["Commit"]):
    def by_prefix(self, prefix: str) -> CommitQuerySet:
        """Commits whose sha starts with ``prefix`` (at least 7 hex characters)."""
        return self.filter(sha__startswith=prefix.lower())


class Commit(GuardedModel):
    # No index of its own: the (repository, committed_at) index serves repository lookups, and a sync
    # inserting tens of thousands of commits has one index fewer to maintain. Nor PostgreSQL's foreign key
    # constraint, which checks each commit of a 50,000-commit COPY on its own (a third of the load's time):
    # two triggers hold the same reference, checked once per statement (Meta.triggers, and the repository's).
    repository = models.ForeignKey(
        GitRepository, on_delete=models.PROTECT, related_name="commits", db_index=False, db_constraint=False
    )
    sha = models.CharField(max_length=40, validators=[sha_validator])
    author_name = models.CharField(max_length=200, blank=True)
    author_email = models.CharField(max_length=200, blank=True)
    authored_at = models.DateTimeField(null=True, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    parents = models.JSONField(default=list, blank=True)

    immutable_fields = ("repository", "sha")
    objects = CommitQuerySet.as_manager()

    class Meta:
        db_table = COMMIT_TABLE
        ordering = ["-committed_at"]
        # One index on the sha serves every lookup by it: exact (in a repository or any), by prefix (LIKE
        # 'abc%': pattern_ops on PostgreSQL) and the uniqueness per repository. A sync copying tens of
        # thousands of commits maintains two indexes, not three.
        constraints = [
            models.UniqueConstraint(
                fields=["sha", "repository"],
                name="commit_unique_sha_per_repo",
                opclasses=["varchar_pattern_ops", "int8_ops"],
            )
        ]
        indexes = [models.Index(fields=["repository", "committed_at"], name="commit_repo_time_idx")]
        triggers = [
            pgtriggers.ReadOnly(name="commit_immutable", fields=["repository", "sha"]),
            pgtriggers.Protect(name="commit_never_deleted", operation=pgtriggers.DELETE),
            pgtriggers.refuse_truncate("commit_no_truncate", "commits are never deleted"),
            pgtriggers.reference_checked(
                "commit_repository_exists", column="repository_id", referenced_table=GitRepository._meta.db_table
            ),
        ]

    def __str__(self) -> str:
        return self.sha[:12]

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def summary(self) -> str:
        return self.message.splitlines()[0] if self.message else ""

    @property
    def url(self) -> str:
        return self.repository.commit_url(self.sha)


class GitTag(GuardedModel):
    """A tag as first seen. A later move is recorded beside it, never written over it."""

    repository = models.ForeignKey(GitRepository, on_delete=models.PROTECT, related_name="tags")
    name = models.CharField(max_length=255)
    commit = models.ForeignKey(Commit, on_delete=models.PROTECT, related_name="tags")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    moved_to_sha = models.CharField(max_length=40, blank=True, help_text="Where the tag points now, if it moved.")
    moved_at = models.DateTimeField(null=True, blank=True)

    immutable_fields = ("repository", "name", "commit")

    class Meta:
        ordering = ["repository", "name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_name_per_repo")]
        indexes = [models.Index(fields=["name"], name="tag_name_idx")]
        triggers = [
            pgtriggers.ReadOnly(name="tag_immutable", fields=["repository", "name", "commit"]),
            pgtriggers.Protect(name="tag_never_deleted", operation=pgtriggers.DELETE),
            pgtriggers.refuse_truncate("tag_no_truncate", "tags are never deleted"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def moved(self) -> bool:
        return bool(self.moved_to_sha)
