"""Settings for the test run: the product's own settings, read without the caller's product variables."""

from __future__ import annotations

from tests.clean_environment import scrub

scrub()

from lineage_site.settings import *  # noqa: E402, F403
