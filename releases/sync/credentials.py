"""Reading a source's credentials when it syncs, from the environment variable or file the source names.

Nothing here is stored: a secret is read at the start of each sync (or write-back) and handed to the
client of that one source. Every problem is one line naming the source and what is wrong, raised as
SourceUnavailable so that /sync/ shows it and the task retries (a secret may be mounted late).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from releases.models import GitRepository, TrackingServer
from releases.sync.state import SourceUnavailable

# A credential is a line of text; a file much larger than this is the wrong file.
MAX_SECRET_BYTES = 64 * 1024


def source_label(source: GitRepository | TrackingServer) -> str:
    """How messages name a source: "MLflow server prod", "Git repository churn"."""
    kind = "Git repository" if isinstance(source, GitRepository) else "MLflow server"
    return f"{kind} {source.name}"


def auth_failed(source: GitRepository | TrackingServer, detail: str = "") -> SourceUnavailable:
    """The line for a server that refused the credential (or asked for one none was set for)."""
    which = source.credential or "none is set"
    return SourceUnavailable(
        f"authentication failed for {source_label(source)}: check its credential ({which}){detail}"
    )


def read_secret(source: GitRepository | TrackingServer, secret: str, *, env: str, file: str) -> str:
    """The secret from ``$env`` or the file ``file`` (whichever is set), stripped of surrounding whitespace."""
    label = source_label(source)
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SourceUnavailable(f"{label}: its {secret} comes from ${env}, which is not set on this worker")
        where = f"${env}"
    else:
        where = f"file {file}"
        try:
            with Path(file).open("rb") as handle:
                raw = handle.read(MAX_SECRET_BYTES + 1)
        except FileNotFoundError:
            raise SourceUnavailable(f"{label}: its {secret} file {file} does not exist") from None
        except IsADirectoryError:
            raise SourceUnavailable(f"{label}: its {secret} file {file} is a directory, not a file") from None
        except PermissionError:
            raise SourceUnavailable(
                f"{label}: its {secret} file {file} cannot be read by this worker (permission denied)"
            ) from None
        except OSError as exc:
            raise SourceUnavailable(f"{label}: its {secret} file {file} cannot be read ({exc.strerror})") from None
        if len(raw) > MAX_SECRET_BYTES:
            raise SourceUnavailable(f"{label}: its {secret} file {file} is larger than 64 KiB: not a {secret}")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SourceUnavailable(f"{label}: its {secret} file {file} is not UTF-8 text") from None
    # A trailing newline is how `echo` and most secret stores write a file; anything inside is not a secret.
    value = value.strip()
    if not value:
        raise SourceUnavailable(f"{label}: its {secret} from {where} is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        # Never passed on: it would end up in an HTTP header, where a line break starts a new header.
        raise SourceUnavailable(f"{label}: its {secret} from {where} holds a line break or a control character")
    return value


@dataclass(frozen=True)
class MlflowSecrets:
    username: str = ""
    password: str = ""
    token: str = ""


def mlflow_secrets(server: TrackingServer) -> MlflowSecrets | None:
    """The server's token or username and password; None when it names none (the worker's own MLflow setup)."""
    credentials = server.credentials
    if credentials.token:
        return MlflowSecrets(token=read_secret(server, "token", env=credentials.token_env, file=credentials.token_file))
    if credentials.username:
        password = read_secret(server, "password", env=credentials.password_env, file=credentials.password_file)
        return MlflowSecrets(username=credentials.username, password=password)
    return None


def check_ssh_files(repository: GitRepository) -> None:
    """The checks ssh makes on its files, done first so that each failure is one plain line, not ssh's banner."""
    credentials = repository.credentials
    label = source_label(repository)
    key = credentials.ssh_key_file
    try:
        info = os.stat(key)
    except FileNotFoundError:
        raise SourceUnavailable(f"{label}: its SSH key file {key} does not exist") from None
    except OSError as exc:
        raise SourceUnavailable(f"{label}: its SSH key file {key} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise SourceUnavailable(f"{label}: its SSH key file {key} is not a regular file")
    # ssh's own rule (sshkey_perm_ok): a key of ours that group or others may read is refused.
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        raise SourceUnavailable(
            f"{label}: its SSH key file {key} may be read by other users (mode {stat.S_IMODE(info.st_mode):04o}) "
            f"and ssh refuses such a key: chmod 600 {key}"
        )
    if not os.access(key, os.R_OK):
        raise SourceUnavailable(f"{label}: its SSH key file {key} cannot be read by this worker (permission denied)")
    known_hosts = credentials.known_hosts_file
    if not os.path.isfile(known_hosts):
        raise SourceUnavailable(
            f"{label}: its known_hosts file {known_hosts} does not exist, so the server's host key cannot be checked"
        )
    if not os.access(known_hosts, os.R_OK):
        raise SourceUnavailable(
            f"{label}: its known_hosts file {known_hosts} cannot be read by this worker (permission denied)"
        )
