"""Sources through the service: adding a Git repository or an MLflow server is audited."""

from __future__ import annotations

from tests.unit.conftest import last_event


def test_sources_are_audited(world):
    assert last_event("git_repository.added").object_key == "churn"
    assert last_event("tracking_server.added").new == {"tracking_uri": "http://127.0.0.1:5000"}
