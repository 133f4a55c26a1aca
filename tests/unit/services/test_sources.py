"""Sources through the service: adding a Git repository or an MLflow server, and naming where its
credential is read, is audited; a credential is stored only as where to read it."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from releases import services
from releases.errors import InvalidInput
from releases.models import GitRepository, TrackingServer
from releases.models.credentials import GitCredentials, MlflowCredentials
from tests.factories import SYSTEM
from tests.unit.conftest import last_event


def test_sources_are_audited(world):
    assert last_event("git_repository.added").object_key == "churn"
    assert last_event("tracking_server.added").new == {"tracking_uri": "http://127.0.0.1:5000"}


def test_a_source_stores_where_its_credential_is_read_and_the_trail_says_which(db):
    server = services.add_mlflow_server(
        name="prod",
        tracking_uri="https://mlflow.example.com",
        credentials=MlflowCredentials(username="svc-lineage", password_file="/run/secrets/mlflow"),
        by=SYSTEM,
    ).server
    repository = services.add_git_repository(
        name="churn",
        url="git@git.example.com:ml/churn.git",
        credentials=GitCredentials(ssh_key_file="/keys/churn", known_hosts_file="/keys/known_hosts"),
        by=SYSTEM,
    ).repository

    server = TrackingServer.objects.get(pk=server.pk)
    assert (server.username, server.password_file, server.password_env, server.token_env) == (
        "svc-lineage",
        "/run/secrets/mlflow",
        "",
        "",
    )
    assert server.credential == "user svc-lineage, password from file /run/secrets/mlflow"
    assert GitRepository.objects.get(pk=repository.pk).credential == (
        "SSH key file /keys/churn, known hosts from /keys/known_hosts"
    )
    assert last_event("tracking_server.added").new == {
        "tracking_uri": "https://mlflow.example.com",
        "credential": "user svc-lineage, password from file /run/secrets/mlflow",
    }
    assert last_event("git_repository.added").new["credential"] == (
        "SSH key file /keys/churn, known hosts from /keys/known_hosts"
    )


def test_changing_a_credential_is_audited_with_which_one_was_and_is_set(db):
    server = services.add_mlflow_server(
        name="prod",
        tracking_uri="https://mlflow.example.com",
        credentials=MlflowCredentials(token_env="MLFLOW_PROD_TOKEN"),
        by=SYSTEM,
    ).server

    services.set_mlflow_credentials(server, credentials=MlflowCredentials(token_file="/run/secrets/token"), by=SYSTEM)
    services.set_mlflow_credentials(server, credentials=MlflowCredentials(token_file="/run/secrets/token"), by=SYSTEM)
    # Given again with the same URI and other credentials, add_mlflow_server changes them the same way.
    services.add_mlflow_server(
        name="prod", tracking_uri="https://mlflow.example.com", credentials=MlflowCredentials(), by=SYSTEM
    )

    server.refresh_from_db()
    assert (server.token_env, server.token_file, server.credential) == ("", "", "")
    changes = AuditEvent.objects.filter(action="tracking_server.credentials_changed", object_key="prod").order_by("seq")
    assert [(e.old["credential"], e.new["credential"]) for e in changes] == [
        ("token from $MLFLOW_PROD_TOKEN", "token from file /run/secrets/token"),
        ("token from file /run/secrets/token", ""),
    ]


MLFLOW = "https://mlflow.example.com"


@pytest.mark.parametrize(
    ("uri", "credentials", "message"),
    [
        (MLFLOW, {"token_env": "1TOKEN"}, "the environment variable name for token_env '1TOKEN' is not valid"),
        (MLFLOW, {"token_env": "MY-TOKEN"}, "the environment variable name for token_env 'MY-TOKEN' is not valid"),
        (MLFLOW, {"token_file": "secrets/token"}, "the token file 'secrets/token' is not valid: A credential file"),
        (MLFLOW, {"token_env": "T", "token_file": "/t"}, "the token comes from one place: --token-env or --token-file"),
        (MLFLOW, {"token_env": "T", "username": "u", "password_env": "P"}, "a token or a username and password, not"),
        (MLFLOW, {"username": "svc"}, "user svc needs a password: --password-env NAME or --password-file PATH"),
        (MLFLOW, {"password_env": "P"}, "a password needs the username it belongs to (--username)"),
        (MLFLOW, {"username": "a:b", "password_env": "P"}, "the username 'a:b' is not valid: A username may not"),
        ("file:///srv/mlruns", {"token_env": "T"}, "credentials are sent only to an http:// or https:// tracking"),
    ],
)
def test_a_bad_mlflow_credential_is_refused_in_one_line_and_recorded(db, uri, credentials, message):
    with pytest.raises(InvalidInput) as refused:
        services.add_mlflow_server(
            name="prod", tracking_uri=uri, credentials=MlflowCredentials(**credentials), by=SYSTEM
        )

    assert message in refused.value.message
    assert "\n" not in refused.value.message
    assert not TrackingServer.objects.exists()
    event = last_event("tracking_server.add_refused")
    assert (event.object_key, event.new["rule"], event.reason) == ("prod", "bad_credential", refused.value.message)


HTTPS, SSH, LOCAL = "https://git.example.com/ml/churn.git", "ssh://git@git.example.com/ml/churn.git", "/srv/churn.git"
KEY = {"ssh_key_file": "/keys/churn", "known_hosts_file": "/keys/known_hosts"}


@pytest.mark.parametrize(
    ("url", "credentials", "message"),
    [
        (LOCAL, {"token_env": "GIT_TOKEN"}, "an HTTPS token needs an http:// or https:// clone URL"),
        (HTTPS, KEY, "an SSH key needs an ssh:// or user@host:path clone URL"),
        (SSH, {"ssh_key_file": "/keys/churn"}, "an SSH key needs a known_hosts file (--known-hosts-file PATH)"),
        (SSH, {"known_hosts_file": "/keys/known_hosts"}, "a known_hosts file goes with an SSH key"),
        (SSH, {**KEY, "ssh_key_file": "~/.ssh/id_ed25519"}, "the ssh key file '~/.ssh/id_ed25519' is not valid"),
        (HTTPS, {"token_env": "GIT_TOKEN", **KEY}, "an HTTPS token or an SSH key, not both"),
    ],
)
def test_a_bad_git_credential_is_refused_in_one_line_and_recorded(db, url, credentials, message):
    with pytest.raises(InvalidInput) as refused:
        services.add_git_repository(name="churn", url=url, credentials=GitCredentials(**credentials), by=SYSTEM)

    assert message in refused.value.message
    assert not GitRepository.objects.exists()
    assert last_event("git_repository.add_refused").reason == refused.value.message


@pytest.mark.parametrize(
    "add",
    [
        lambda: services.add_git_repository(name="churn", url="https://ci:ghp_secret@git.example.com/x.git", by=SYSTEM),
        lambda: services.add_mlflow_server(
            name="prod", tracking_uri="https://svc:hunter2@mlflow.example.com", by=SYSTEM
        ),
    ],
)
def test_an_address_carrying_a_password_is_refused_because_it_would_be_stored(db, add):
    with pytest.raises(InvalidInput, match="carries a password, which would be stored in clear") as refused:
        add()

    assert refused.value.rule == "secret_in_url"
    assert not GitRepository.objects.exists()
    assert not TrackingServer.objects.exists()
    assert not AuditEvent.objects.filter(reason__contains="ghp_secret").exists()
    assert "hunter2" not in refused.value.message
