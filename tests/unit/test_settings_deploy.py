"""Production defaults: DEBUG off unless set, `check --deploy` clean, and no password on a debug page."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import RequestFactory
from django.views import debug
from django.views.debug import technical_500_response

from lineage_site.reporting import CredentialMaskingFilter, mask_url_passwords

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-" + "q9" * 10,
    "ALLOWED_HOSTS": "lineage.example.com",
}


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Nothing from the caller's product variables, no DEBUG at all: the settings' own defaults.
    from tests.clean_environment import product_variables

    drop = set(product_variables(os.environ)) | {"DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL"}
    drop |= {"DATABASE_MIGRATE_URL", "REDIS_URL", "TEST_DATABASE_NAME"}
    return {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "DJANGO_SETTINGS_MODULE": "lineage_site.settings",
        "LINEAGE_VAR_DIR": str(tmp_path),
        **PRODUCTION,
        **extra,
    }


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def _setting(env: dict[str, str], expression: str) -> str:
    result = _manage(env, "shell", "-c", f"from django.conf import settings; print({expression})")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_debug_is_off_unless_set(tmp_path: Path):
    env = _production_env(tmp_path)
    assert _setting(env, "settings.DEBUG") == "False"
    assert _setting({**env, "DEBUG": "1"}, "settings.DEBUG") == "True"


def test_check_deploy_passes_with_no_warning_on_the_production_defaults(tmp_path: Path):
    for database in ({}, {"DATABASE_URL": "postgres://lineage_app:db-secret@db.example.com:5432/lineage"}):
        result = _manage(_production_env(tmp_path, **database), "check", "--deploy", "--fail-level", "WARNING")
        assert result.returncode == 0, result.stderr
        assert "System check identified no issues" in result.stdout


def test_the_production_defaults_are_strict(tmp_path: Path):
    env = _production_env(tmp_path)
    values = _setting(
        env,
        "[settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE,"
        " settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY, settings.X_FRAME_OPTIONS,"
        " getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)]",
    )
    assert values == "[True, 31536000, True, True, True, 'DENY', None]"
    behind_proxy = _production_env(tmp_path, SECURE_PROXY_SSL_HEADER="1", SECURE_HSTS_SECONDS="600")
    assert _setting(behind_proxy, "[settings.SECURE_PROXY_SSL_HEADER, settings.SECURE_HSTS_SECONDS]") == (
        "[('HTTP_X_FORWARDED_PROTO', 'https'), 600]"
    )


def test_url_passwords_are_masked():
    assert mask_url_passwords("postgres://app:hunter2@db:5432/x") == "postgres://app:********************@db:5432/x"
    assert mask_url_passwords("redis://:hunter2@redis:6379/0") == "redis://:********************@redis:6379/0"
    assert mask_url_passwords("a postgres://u:p@ss@h/d b") == "a postgres://u:********************@h/d b"
    assert mask_url_passwords("postgres://app@db/x") == "postgres://app@db/x"
    assert mask_url_passwords("http://host:8080/path@x") == "http://host:8080/path@x"


def _credentials_everywhere(settings: Any) -> None:
    """Settings holding URLs with passwords, as a deployment has them.

    Generated, so that the page's source excerpts of this module cannot contain them.
    """
    pw = {name: secrets.token_hex(8) for name in ("db", "owner", "redis", "broker", "results", "cache", "replica")}
    settings.DATABASE_URL = f"postgres://lineage_app:{pw['db']}@db.example.com:5432/lineage"
    settings.DATABASE_MIGRATE_URL = f"postgres://lineage_owner:{pw['owner']}@db.example.com:5432/lineage"
    settings.REDIS_URL = f"redis://:{pw['redis']}@redis.example.com:6379/0"
    settings.CELERY_BROKER_URL = f"redis://default:{pw['broker']}@redis.example.com:6379/0"
    settings.CELERY_RESULT_BACKEND = f"redis://default:{pw['results']}@redis.example.com:6379/1"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"redis://default:{pw['cache']}@redis.example.com:6379/2",
        }
    }
    settings.DATABASES = {**settings.DATABASES, "replica": {"ENGINE": "x", "PASSWORD": pw["replica"]}}


@pytest.fixture(autouse=True)
def _fresh_reporter_filter() -> Iterator[None]:
    """Django keeps the exception reporter filter it first built: each test here builds its own."""
    debug.get_default_exception_reporter_filter.cache_clear()
    yield
    debug.get_default_exception_reporter_filter.cache_clear()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_debug_error_page_shows_no_password(settings):
    settings.DEBUG = True
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "lineage_site.reporting.CredentialMaskingFilter"
    _credentials_everywhere(settings)
    # runserver copies the process environment into each request's META.
    request = RequestFactory().get("/boom/", DATABASE_URL=settings.DATABASE_URL)
    connection_string = settings.REDIS_URL  # a local variable of the failing frame
    try:
        raise RuntimeError(f"cannot connect to {connection_string.rpartition('@')[2]}")
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    html = response.content.decode()
    assert response.status_code == 500
    assert "DATABASE_URL" in html
    assert "CELERY_BROKER_URL" in html
    # Read back only now: a local holding them while the page was built would be on the page itself.
    urls = [settings.DATABASE_URL, settings.DATABASE_MIGRATE_URL, settings.REDIS_URL, settings.CELERY_BROKER_URL]
    urls += [settings.CELERY_RESULT_BACKEND, settings.CACHES["default"]["LOCATION"]]
    passwords = [urlsplit(url).password for url in urls] + [settings.DATABASES["replica"]["PASSWORD"]]
    assert all(passwords)
    assert len(set(passwords)) == 7
    assert [password for password in passwords if password in html] == []
    assert CredentialMaskingFilter.cleansed_substitute in html


def test_the_debug_page_would_show_passwords_without_the_filter(settings):
    settings.DEBUG = True
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = "django.views.debug.SafeExceptionReporterFilter"
    settings.REDIS_URL = "redis://:hunter2-redis@redis.example.com:6379/0"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = technical_500_response(RequestFactory().get("/"), *sys.exc_info())
    assert "hunter2-redis" in response.content.decode()


def test_the_loaded_application_is_out_of_the_garbage_collectors_reach(tmp_path: Path):
    # What a server process holds once the WSGI module is imported: the views loaded with the rest and frozen,
    # so a full collection during a request walks only the objects requests left behind.
    code = (
        "import gc, sys\n"
        "assert gc.get_freeze_count() == 0\n"
        "import lineage_site.wsgi\n"
        "print(gc.get_freeze_count(), len(gc.get_objects(generation=2)), 'releases.views.pages' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_production_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    frozen, left, views_loaded = result.stdout.split()
    assert int(frozen) > 50_000
    assert int(left) < int(frozen) // 100, "nearly nothing left for a full collection to walk"
    assert views_loaded == "True"
