"""A bad query parameter gets a message that says what is wrong, never an error page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import World

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/endpoints/churn-scoring/?at=yesterday-ish", 400, "is not a date and time"),
        ("/investigate/?endpoint=churn-scoring&at=13/13/2024", 400, "is not a date and time"),
        ("/investigate/?endpoint=no-such-endpoint", 404, "There is no endpoint named"),
        ("/releases/compare/?a=churn-v41&b=churn-v99", 404, "No release named churn-v99"),
        ("/releases/compare/?a=churn-v41", 400, "Choose two releases to compare"),
        ("/releases/?state=shipped&page=zz", 400, "“shipped” is not a release state"),
        ("/releases/?page=999", 200, "churn-v42"),
        # Pages of a list: a number past the last shows the last; anything else, the first.
        ("/datasets/churn-train/18/?runs_page=999&releases_page=²", 200, "churn-v42"),
        ("/datasets/churn-train/18/?versions_page=-1&live_page=9999999999999999999999", 200, "churn-model/42"),
        ("/releases/compare/?a=churn-v41&b=churn-v42&commits_page=1e3", 200, "Commits between them"),
        # A keyset page continues from a row of its own list; any other number shows the newest.
        ("/models/churn-model/?before=x", 200, 'id="v42"'),
        ("/models/churn-model/?after=99999", 200, 'id="v42"'),
        ("/endpoints/churn-scoring/?before=99999", 200, "churn-v42"),
        ("/endpoints/churn-scoring/?after=٣", 200, "churn-v42"),
    ],
)
def test_bad_parameters_get_a_friendly_message(
    client: Client, lead: User, deployed_world: World, path: str, status: int, message: str
) -> None:
    client.force_login(lead)
    response = client.get(path)
    assert response.status_code == status
    assert message in response.content.decode()
