"""Settings for release lineage, read from the environment (see README, Configuration).

No environment at all gives the embedded development setup: SQLite under var/, eager
Celery, a local signing key. DEBUG defaults to on for that reason; production sets
DEBUG=0, and then a missing SECRET_KEY or ALLOWED_HOSTS stops the start-up.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lineage_site.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("LINEAGE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=True)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Development only: a random key kept under var/ so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "pgtrigger",
    "audit",
    "releases",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Below WhiteNoise, so static files keep their own caching.
    "releases.middleware.NeverCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # NUL characters and oversized API bodies are refused before any page, endpoint or admin screen sees them.
    "releases.middleware.RefuseUnreadableInputMiddleware",
    # Every page needs a signed-in person with a role; the login page and the token-checked API are exempt.
    "releases.middleware.RoleRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.RequestIdMiddleware",
]

ROOT_URLCONF = "lineage_site.urls"
WSGI_APPLICATION = "lineage_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from exc
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "lineage.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    }
# PostgreSQL with two roles (README, PostgreSQL roles): DATABASE_URL is the application's role, which
# owns nothing; DATABASE_MIGRATE_URL, given only to the release job, is the owner's, which
# `manage.py migrate --database owner` uses. After migrate the owner grants the application's role
# its privileges (audit/dbroles.py).
DATABASE_MIGRATE_URL = env_str("DATABASE_MIGRATE_URL")
LINEAGE_DB_APP_ROLE = ""
if DATABASE_MIGRATE_URL:
    if not DATABASE_URL:
        raise ImproperlyConfigured("DATABASE_MIGRATE_URL is set but DATABASE_URL (the application's role) is not")
    try:
        DATABASES["owner"] = dj_database_url.parse(DATABASE_MIGRATE_URL, conn_max_age=0)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_MIGRATE_URL cannot be parsed: {exc}") from exc
    if DATABASES["owner"]["NAME"] != DATABASES["default"]["NAME"]:
        raise ImproperlyConfigured("DATABASE_MIGRATE_URL must name the same database as DATABASE_URL")
    LINEAGE_DB_APP_ROLE = DATABASES["default"].get("USER") or ""
    if not LINEAGE_DB_APP_ROLE or DATABASES["owner"].get("USER") == LINEAGE_DB_APP_ROLE:
        raise ImproperlyConfigured("DATABASE_URL and DATABASE_MIGRATE_URL must name two different roles")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "releases:board"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Security: strict by default in production; each can be relaxed from the environment
# (for example SECURE_SSL_REDIRECT=0 when TLS ends at a proxy that already redirects).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "releases.api.permissions.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["releases.api.permissions.ScopedRolePermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "releases.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "releases.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Release lineage API",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["releases.api.permissions.ScopedRolePermission"],
    # Every operation documents the JSON errors it can answer (releases/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "releases.api.schema.document_errors",
    ],
}

# Celery: Redis as broker when REDIS_URL is set; otherwise tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

# Product rules.
LINEAGE_RELEASE_NAME_PATTERN = env_str(
    "LINEAGE_RELEASE_NAME_PATTERN", r"^(?P<model>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)-v(?P<number>[1-9][0-9]*)$"
)
LINEAGE_REQUIRED_APPROVALS = env_int("LINEAGE_REQUIRED_APPROVALS", 1)
LINEAGE_SIGNING_KEY_FILE = Path(env_str("LINEAGE_SIGNING_KEY_FILE", str(VAR_DIR / "signing_key.pem")))
# Development creates the key on first use; production must provide it (and a missing one stops signing).
LINEAGE_SIGNING_KEY_AUTOCREATE = env_bool("LINEAGE_SIGNING_KEY_AUTOCREATE", default=DEBUG)
# Four-eyes also forbids the author of the MLflow run from approving its release.
LINEAGE_FOUR_EYES_RUN_AUTHOR = env_bool("LINEAGE_FOUR_EYES_RUN_AUTHOR", default=True)

# Sync from Git and MLflow (README, Sync and workers).
LINEAGE_SYNC_INTERVAL_SECONDS = env_int("LINEAGE_SYNC_INTERVAL_SECONDS", 300)
LINEAGE_SYNC_LEASE_SECONDS = env_int("LINEAGE_SYNC_LEASE_SECONDS", 900)
LINEAGE_GIT_CACHE_DIR = Path(env_str("LINEAGE_GIT_CACHE_DIR", str(VAR_DIR / "git-cache")))
LINEAGE_MLFLOW_COMMIT_TAG = env_str("LINEAGE_MLFLOW_COMMIT_TAG", "git_commit")
LINEAGE_MLFLOW_DATASET_TAG = env_str("LINEAGE_MLFLOW_DATASET_TAG", "dataset_version")
LINEAGE_MLFLOW_FEATURE_PARAM = env_str("LINEAGE_MLFLOW_FEATURE_PARAM", "feature_view")
LINEAGE_MLFLOW_RELEASE_TAG = env_str("LINEAGE_MLFLOW_RELEASE_TAG", "release")
# Runs started this recently are read again on every sync (they still get tags and metrics);
# older runs are re-read by the full pass, at most this many hours apart.
LINEAGE_MLFLOW_LOOKBACK_HOURS = env_int("LINEAGE_MLFLOW_LOOKBACK_HOURS", 24)
LINEAGE_MLFLOW_FULL_SYNC_HOURS = env_int("LINEAGE_MLFLOW_FULL_SYNC_HOURS", 24)
LINEAGE_MLFLOW_WEBHOOK_SECRET = env_str("LINEAGE_MLFLOW_WEBHOOK_SECRET")
CELERY_BEAT_SCHEDULE = {
    "sync-due-sources": {"task": "releases.tasks.sync_due_sources", "schedule": 60.0},
    "retry-write-backs": {"task": "releases.tasks.retry_write_backs", "schedule": 300.0},
    "audit-checkpoint": {
        "task": "audit.tasks.sign_checkpoint",
        "schedule": float(env_int("LINEAGE_CHECKPOINT_SECONDS", 300)),
    },
}
# Name of this audit log in signed checkpoints (what an offline verifier expects to see). It is also the
# signing key's name in the signed note, so it follows note key names: no spaces, no "+".
LINEAGE_AUDIT_ORIGIN = env_str("LINEAGE_AUDIT_ORIGIN", "release-lineage")
if not LINEAGE_AUDIT_ORIGIN or "+" in LINEAGE_AUDIT_ORIGIN or any(c.isspace() for c in LINEAGE_AUDIT_ORIGIN):
    raise ImproperlyConfigured(f"LINEAGE_AUDIT_ORIGIN must have no spaces and no '+', not {LINEAGE_AUDIT_ORIGIN!r}")
# Every signed checkpoint is also appended here, outside the database, so a database superuser cannot
# rewrite the record of what was signed. Point it at storage the database host cannot write.
LINEAGE_CHECKPOINT_LOG = Path(env_str("LINEAGE_CHECKPOINT_LOG", str(VAR_DIR / "checkpoints.log")))
