"""Where a source's credentials come from: the name of an environment variable or the path of a file,
never the secret itself.

A source stores only these pointers (and the parts that are not secret: an MLflow username, an SSH
known_hosts file); the sync reads the secret when it runs (``releases.sync.credentials``), so a
database dump, the admin, the audit trail and every page show at most *which* credential is set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from releases.errors import InvalidInput

env_name_validator = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*\Z",
    "An environment variable name is letters, digits and underscores, and does not start with a digit.",
)
username_validator = RegexValidator(
    r"^[^:\x00-\x1f\x7f]+\Z", "A username may not contain a colon, a line break or other control characters."
)


def validate_absolute_path(value: str) -> None:
    """A credential file is named by its absolute path: a relative one would depend on the worker's directory."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("A file path may not contain line breaks or other control characters.")
    if not value.startswith("/"):
        raise ValidationError("A credential file is named by its absolute path, starting with /.")


ENV_MAX, PATH_MAX, USERNAME_MAX = 100, 500, 150


def env_field(secret: str) -> models.CharField[str, str]:
    return models.CharField(
        max_length=ENV_MAX,
        blank=True,
        validators=[env_name_validator],
        help_text=f"Environment variable of the worker that holds the {secret} (its name, never the {secret}).",
    )


def file_field(secret: str, *, what: str = "") -> models.CharField[str, str]:
    return models.CharField(
        max_length=PATH_MAX,
        blank=True,
        validators=[validate_absolute_path],
        help_text=what or f"Absolute path of a file on the worker that holds the {secret}.",
    )


def _from(env: str, file: str) -> str:
    return f"${env}" if env else f"file {file}"


def url_kind(url: str) -> str:
    """How git reaches ``url``: "http" (http:// or https://), "ssh" (ssh:// or user@host:path), or "other"."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in {"http", "https"}:
        return "http"
    if scheme in {"ssh", "git+ssh", "ssh+git"}:
        return "ssh"
    if not scheme and ":" in url.split("/", 1)[0]:
        return "ssh"  # scp-like: git@git.example.com:churn.git
    return "other"


def has_password(url: str) -> bool:
    """Whether an http(s) address carries a password (``https://user:secret@host``), which would be stored in clear."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _check(validator: Any, value: str, what: str) -> None:
    if not value:
        return
    try:
        validator(value)
    except ValidationError as exc:
        raise InvalidInput(f"{what} {value[:120]!r} is not valid: {exc.messages[0]}", rule="bad_credential") from exc


class _Credentials:
    """Shared by both kinds: the pointers as a dict for the audit trail, and field-by-field checks."""

    def as_dict(self) -> dict[str, str]:
        """Every pointer that is set, for the audit trail: names and paths, never a secret."""
        return {key: value for key, value in asdict(self).items() if value}  # type: ignore[call-overload]

    def _check_fields(self) -> None:
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.name.endswith("_env"):
                _check(env_name_validator, value, f"the environment variable name for {field.name}")
                limit = ENV_MAX
            elif field.name.endswith("_file"):
                _check(validate_absolute_path, value, f"the {field.name.replace('_', ' ')}")
                limit = PATH_MAX
            else:
                _check(username_validator, value, f"the {field.name}")
                limit = USERNAME_MAX
            if len(value) > limit:
                raise InvalidInput(f"{field.name} is longer than {limit} characters", rule="bad_credential")

    @staticmethod
    def _one_place(env: str, file: str, secret: str, env_option: str, file_option: str) -> None:
        if env and file:
            raise InvalidInput(
                f"the {secret} comes from one place: {env_option} or {file_option}, not both", rule="bad_credential"
            )


@dataclass(frozen=True)
class MlflowCredentials(_Credentials):
    """How the sync authenticates to an MLflow server: a token, or a username and a password."""

    username: str = ""
    password_env: str = ""
    password_file: str = ""
    token_env: str = ""
    token_file: str = ""

    @classmethod
    def of(cls, server: Any) -> MlflowCredentials:
        return cls(**{f.name: getattr(server, f.name) for f in fields(cls)})

    @property
    def token(self) -> bool:
        return bool(self.token_env or self.token_file)

    @property
    def password(self) -> bool:
        return bool(self.password_env or self.password_file)

    def describe(self) -> str:
        """Which credential is set, in words: "token from $MLFLOW_PROD_TOKEN"; empty when none is."""
        if self.token:
            return f"token from {_from(self.token_env, self.token_file)}"
        if self.username:
            return f"user {self.username}, password from {_from(self.password_env, self.password_file)}"
        return ""

    def check(self, tracking_uri: str) -> None:
        """Refuse, in one line, pointers that cannot work together or with this tracking URI."""
        self._check_fields()
        self._one_place(self.token_env, self.token_file, "token", "--token-env", "--token-file")
        self._one_place(self.password_env, self.password_file, "password", "--password-env", "--password-file")
        if self.token and (self.username or self.password):
            raise InvalidInput(
                "an MLflow server takes a token or a username and password, not both", rule="bad_credential"
            )
        if self.username and not self.password:
            raise InvalidInput(
                f"user {self.username} needs a password: --password-env NAME or --password-file PATH",
                rule="bad_credential",
            )
        if self.password and not self.username:
            raise InvalidInput("a password needs the username it belongs to (--username)", rule="bad_credential")
        if (self.token or self.username) and url_kind(tracking_uri) != "http":
            raise InvalidInput(
                f"credentials are sent only to an http:// or https:// tracking server, not {tracking_uri[:80]!r}",
                rule="bad_credential",
            )


@dataclass(frozen=True)
class GitCredentials(_Credentials):
    """How the sync authenticates to a Git server: an HTTPS token, or an SSH key checked against known hosts."""

    token_env: str = ""
    token_file: str = ""
    ssh_key_file: str = ""
    known_hosts_file: str = ""

    @classmethod
    def of(cls, repository: Any) -> GitCredentials:
        return cls(**{f.name: getattr(repository, f.name) for f in fields(cls)})

    @property
    def token(self) -> bool:
        return bool(self.token_env or self.token_file)

    def describe(self) -> str:
        """Which credential is set, in words: "HTTPS token from file /run/secrets/git"; empty when none is."""
        if self.token:
            return f"HTTPS token from {_from(self.token_env, self.token_file)}"
        if self.ssh_key_file:
            return f"SSH key file {self.ssh_key_file}, known hosts from {self.known_hosts_file}"
        return ""

    def check(self, url: str) -> None:
        """Refuse, in one line, pointers that cannot work together or with this clone URL."""
        self._check_fields()
        self._one_place(self.token_env, self.token_file, "HTTPS token", "--token-env", "--token-file")
        if self.token and self.ssh_key_file:
            raise InvalidInput("a Git repository takes an HTTPS token or an SSH key, not both", rule="bad_credential")
        if self.ssh_key_file and not self.known_hosts_file:
            raise InvalidInput(
                "an SSH key needs a known_hosts file (--known-hosts-file PATH) to check the server's host key",
                rule="bad_credential",
            )
        if self.known_hosts_file and not self.ssh_key_file:
            raise InvalidInput("a known_hosts file goes with an SSH key (--ssh-key-file PATH)", rule="bad_credential")
        kind = url_kind(url)
        if self.token and kind != "http":
            raise InvalidInput(
                f"an HTTPS token needs an http:// or https:// clone URL, not {url[:80]!r}", rule="bad_credential"
            )
        if self.ssh_key_file and kind != "ssh":
            raise InvalidInput(
                f"an SSH key needs an ssh:// or user@host:path clone URL, not {url[:80]!r}", rule="bad_credential"
            )
