"""The caller's shell must not change a test result.

Variables that configure the product (DEBUG, SECRET_KEY, DEMO_PASSWORD, LINEAGE_*, ...) are removed
from the test process, so a developer who exported them for `make run` gets the same results as CI.
What configures the test run itself is kept: the services to test against and CI's strictness.
"""

from __future__ import annotations

import os

KEPT = {
    "DATABASE_URL",
    "DATABASE_MIGRATE_URL",
    "TEST_DATABASE_NAME",
    "REDIS_URL",
    "LINEAGE_REQUIRE_SERVICES",
    "LINEAGE_CHROMIUM",
    "DJANGO_SETTINGS_MODULE",
}
PREFIXES = ("LINEAGE_", "SECURE_", "CSRF_", "SESSION_", "CELERY_", "DEMO_", "MLFLOW_TRACKING_")
NAMES = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "LOG_LEVEL", "DB_CONN_MAX_AGE", "DB_CONN_HEALTH_CHECKS"}


def product_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The names in ``environ`` that would configure the product under test."""
    found = []
    for name in environ:
        base = name.removesuffix("_FILE")
        if base in KEPT:
            continue
        if base in NAMES or base.startswith(PREFIXES):
            found.append(name)
    return sorted(found)


def scrub() -> list[str]:
    """Remove the product's variables from this process; returns their names."""
    names = product_variables(os.environ)
    for name in names:
        del os.environ[name]
    return names
