"""Settings for the test run: the product's own settings, read without the caller's product variables."""

from __future__ import annotations

import os

from tests.clean_environment import scrub

scrub()
# The development defaults (no TLS redirect, no secure-only cookies, a generated key) whatever the
# product's own default: Django's test runner still runs every test with DEBUG off.
os.environ["DEBUG"] = "1"

from lineage_site.settings import *  # noqa: E402, F403
from lineage_site.settings import DATABASES  # noqa: E402

# With two PostgreSQL roles (DATABASE_URL the application's, DATABASE_MIGRATE_URL the owner's), the
# owner is not a connection of its own during tests: Django's test runner would leave it pointing at
# the real database. tests/conftest.py connects as the owner only to create, migrate and flush the
# test database; every test's queries run as the application's role.
TEST_DATABASE_OWNER = DATABASES.pop("owner", None)
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
