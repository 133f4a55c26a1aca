"""Settings for release lineage, read from the environment (see README, Configuration).

No environment at all is production: DEBUG is off, and then a missing SECRET_KEY or ALLOWED_HOSTS
stops the start-up. DEBUG=1 gives the embedded development setup (`make demo`, `make run`): SQLite
under var/ unless DATABASE_URL says otherwise, eager Celery, a local signing key.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from lineage_site.env import env_bool, env_int, env_list, env_str
from releases.web_links import web_url_problem

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("LINEAGE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for: the debug page shows settings and the request to whoever triggers an error.
DEBUG = env_bool("DEBUG", default=False)


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
    "drf_spectacular_sidecar",
    "csp",
    "pgtrigger",
    "axes",
    "audit",
    "releases",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
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
    # Ends a session left idle before any view sees it (process_view checks above run after it).
    "releases.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.RequestIdMiddleware",
    # Last: turns a lockout flagged during the request (sign-in or signature) into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lineage_site.urls"
WSGI_APPLICATION = "lineage_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # Every template's {% url %} remembers what it reversed (releases/templatetags/addresses.py).
            "builtins": ["releases.templatetags.addresses"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "audit.context_processors.integrity_alarm",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {
            "default": dj_database_url.parse(
                DATABASE_URL,
                conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
                # A kept connection is checked (one round trip) before each request reuses it: after the
                # database restarts, the next request reconnects instead of failing on the dead connection.
                conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", default=True),
            )
        }
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from exc
    # Server-side parameters: psycopg then prepares a statement a connection runs more than five times, so
    # PostgreSQL plans the trace's fifteen joins once per connection instead of on every request (the plan
    # costs ten times the execution). A statement of several commands cannot be prepared: nothing here sends
    # one. DB_SERVER_SIDE_BINDING=0 behind a transaction-mode pooler that cannot keep prepared statements.
    postgres = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if postgres:
        # Django's backend, reading timestamps with psycopg's compiled loader (lineage_site/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "lineage_site.postgresql"
    if postgres and env_bool("DB_SERVER_SIDE_BINDING", default=True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "lineage.sqlite3"),
            # Write-ahead log: a commit syncs one file instead of a journal and the database (the demo
            # build's hundred commits waited seconds on the disk), and pages read while a sync or an
            # eager task writes. Just as durable; SQLite keeps the mode in the file.
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL"},
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
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("LINEAGE_PASSWORD_MIN_LENGTH", 12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out account before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "releases:board"
LOGOUT_REDIRECT_URL = "login"

# Sessions (21 CFR Part 11: a signed-in session left alone must end). A session idle this many minutes is
# ended on its next request; ML leads, release managers and administrators also lose theirs when the
# browser closes (releases/middleware.py).
LINEAGE_SESSION_IDLE_MINUTES = env_int("LINEAGE_SESSION_IDLE_MINUTES", 30)
if LINEAGE_SESSION_IDLE_MINUTES < 1:
    raise ImproperlyConfigured("LINEAGE_SESSION_IDLE_MINUTES must be at least 1")
# However active, a session ends this many hours after sign-in.
SESSION_COOKIE_AGE = env_int("LINEAGE_SESSION_MAX_HOURS", 12) * 3600

# Lockout (django-axes): this many wrong passwords in a row for one account, at sign-in or when signing,
# lock it until an administrator unlocks it (admin, "Access attempts": Unlock), or until the cool-off ends
# when one is set. A successful sign-in clears the count.
AXES_FAILURE_LIMIT = env_int("LINEAGE_LOCKOUT_FAILURES", 5)
_LOCKOUT_COOLOFF_MINUTES = env_int("LINEAGE_LOCKOUT_COOLOFF_MINUTES", 0)
AXES_COOLOFF_TIME = _LOCKOUT_COOLOFF_MINUTES / 60 if _LOCKOUT_COOLOFF_MINUTES > 0 else None
# Per account, as Part 11 asks: rotating addresses or browsers gains an attacker nothing. Not per address too,
# which would let one person's typos lock a whole office behind one NAT address out; so axes' warning that
# the address is not a parameter (W006, aimed at setups keyed on the browser) does not apply.
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 403
# Attempts are shown and cleared through releases/admin.py, where unlocking is an audit event.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Sign-ins and sign-outs are audit events (releases/signals.py); axes need not keep its own copy.
AXES_DISABLE_ACCESS_LOG = True
# The application's login form and the admin's both post "username".
AXES_USERNAME_FORM_FIELD = "username"

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
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind a TLS-terminating proxy, Django sees plain HTTP: SECURE_PROXY_SSL_HEADER=1 trusts the proxy's
# X-Forwarded-Proto. Set it only when the proxy always sets (or strips) that header itself, or a
# client could claim HTTPS.
if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy on every response (django-csp): scripts, styles, images and fonts only from
# this site's static files, no inline script or style, no plugin, no framing, forms post only here.
# The API docs page adds data: images for Swagger UI's icons, and nothing else (releases/api/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# The debug page (DEBUG=1 only) masks passwords in every setting and request variable holding a URL
# (DATABASE_URL, REDIS_URL, the Celery broker, a cache LOCATION), on top of Django's own masking.
DEFAULT_EXCEPTION_REPORTER_FILTER = "lineage_site.reporting.CredentialMaskingFilter"

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
    # Swagger UI from this site's static files (drf-spectacular-sidecar), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge fetched from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
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

# API tokens: how long a new one lasts unless its issuer says otherwise, and the longest allowed.
LINEAGE_API_TOKEN_DAYS = env_int("LINEAGE_API_TOKEN_DAYS", 90)
LINEAGE_API_TOKEN_MAX_DAYS = env_int("LINEAGE_API_TOKEN_MAX_DAYS", 365)
if not 1 <= LINEAGE_API_TOKEN_DAYS <= LINEAGE_API_TOKEN_MAX_DAYS:
    raise ImproperlyConfigured("LINEAGE_API_TOKEN_DAYS must be between 1 and LINEAGE_API_TOKEN_MAX_DAYS")

# Product rules.
LINEAGE_RELEASE_NAME_PATTERN = env_str(
    "LINEAGE_RELEASE_NAME_PATTERN", r"^(?P<model>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)-v(?P<number>[1-9][0-9]*)$"
)
LINEAGE_REQUIRED_APPROVALS = env_int("LINEAGE_REQUIRED_APPROVALS", 1, minimum=1)
LINEAGE_SIGNING_KEY_FILE = Path(env_str("LINEAGE_SIGNING_KEY_FILE", str(VAR_DIR / "signing_key.pem")))
# Development creates the key on first use; production must provide it (and a missing one stops signing).
LINEAGE_SIGNING_KEY_AUTOCREATE = env_bool("LINEAGE_SIGNING_KEY_AUTOCREATE", default=DEBUG)
# Four-eyes also forbids the author of the MLflow run from approving its release.
LINEAGE_FOUR_EYES_RUN_AUTHOR = env_bool("LINEAGE_FOUR_EYES_RUN_AUTHOR", default=True)

# Sync from Git and MLflow (README, Sync and workers).
LINEAGE_SYNC_INTERVAL_SECONDS = env_int("LINEAGE_SYNC_INTERVAL_SECONDS", 300, minimum=1)
LINEAGE_SYNC_LEASE_SECONDS = env_int("LINEAGE_SYNC_LEASE_SECONDS", 900, minimum=1)
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
    "retry-webhook-deliveries": {"task": "releases.tasks.retry_webhook_deliveries", "schedule": 60.0},
    "expire-evidence": {"task": "releases.tasks.expire_evidence", "schedule": 600.0},
    "audit-checkpoint": {
        "task": "audit.tasks.sign_checkpoint",
        "schedule": float(env_int("LINEAGE_CHECKPOINT_SECONDS", 300, minimum=1)),
    },
    "audit-verify": {
        "task": "audit.tasks.verify_log",
        "schedule": float(env_int("LINEAGE_VERIFY_SECONDS", 3600, minimum=1)),
    },
}
# Who is emailed when a verification of the audit log fails, and through which mail server.
LINEAGE_ALERT_EMAILS = env_list("LINEAGE_ALERT_EMAILS")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "release-lineage@localhost")
# Outbound events (README, Outbound events). Links in them start with this address (https://lineage.example.com);
# unset, they are paths on this site, which a Slack message cannot link to.
LINEAGE_BASE_URL = env_str("LINEAGE_BASE_URL").rstrip("/")
if LINEAGE_BASE_URL and web_url_problem(LINEAGE_BASE_URL):
    raise ImproperlyConfigured(f"LINEAGE_BASE_URL: {web_url_problem(LINEAGE_BASE_URL)}, not {LINEAGE_BASE_URL!r}")
# A source whose every sync has failed for this long is announced (sync.failing), once until it syncs again.
LINEAGE_SYNC_ALERT_MINUTES = env_int("LINEAGE_SYNC_ALERT_MINUTES", 30, minimum=1)
# How long a webhook delivery waits for the receiver's answer.
LINEAGE_WEBHOOK_TIMEOUT_SECONDS = env_int("LINEAGE_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
if LINEAGE_WEBHOOK_TIMEOUT_SECONDS > 60:
    raise ImproperlyConfigured("LINEAGE_WEBHOOK_TIMEOUT_SECONDS must be at most 60: a receiver answers quickly")
# Email the ML leads when a release waits for their signature (through the mail server below). Off by default
# in development, where no mail server listens.
LINEAGE_EMAIL_SIGNATURE_REQUESTS = env_bool("LINEAGE_EMAIL_SIGNATURE_REQUESTS", default=not DEBUG)
# Name of this audit log in signed checkpoints (what an offline verifier expects to see). It is also the
# signing key's name in the signed note, so it follows note key names: no spaces, no "+".
LINEAGE_AUDIT_ORIGIN = env_str("LINEAGE_AUDIT_ORIGIN", "release-lineage")
if not LINEAGE_AUDIT_ORIGIN or "+" in LINEAGE_AUDIT_ORIGIN or any(c.isspace() for c in LINEAGE_AUDIT_ORIGIN):
    raise ImproperlyConfigured(f"LINEAGE_AUDIT_ORIGIN must have no spaces and no '+', not {LINEAGE_AUDIT_ORIGIN!r}")
# Every signed checkpoint is also appended here, outside the database, so a database superuser cannot
# rewrite the record of what was signed. Point it at storage the database host cannot write.
# Period evidence bundles, prepared by a worker: kept here (a directory web and workers share) until expiry.
LINEAGE_EVIDENCE_DIR = Path(env_str("LINEAGE_EVIDENCE_DIR", str(VAR_DIR / "evidence")))
LINEAGE_EVIDENCE_KEEP_HOURS = env_int("LINEAGE_EVIDENCE_KEEP_HOURS", 24, minimum=1)
LINEAGE_CHECKPOINT_LOG = Path(env_str("LINEAGE_CHECKPOINT_LOG", str(VAR_DIR / "checkpoints.log")))
