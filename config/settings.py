"""Settings come from the environment (12-factor).

Local runs work with no configuration at all: SQLite in WAL mode, a broker on
the filesystem and a generated secret key. `REVIEWQUEUE_ENV=production` turns
every such convenience into a loud failure.
"""

import os
import re
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import (
    env_bool,
    env_duration,
    env_int,
    env_list,
    env_str,
    secret_key_weakness,
    write_private_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("REVIEWQUEUE_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

ENVIRONMENT = env_str("REVIEWQUEUE_ENV", "local")
if ENVIRONMENT not in {"local", "test", "production"}:
    raise ImproperlyConfigured(f"REVIEWQUEUE_ENV={ENVIRONMENT!r}: use local, test or production")
LOCAL_RUN = ENVIRONMENT != "production"

DEBUG = env_bool("DEBUG", default=False)


def _secret_key() -> str:
    if key := env_str("SECRET_KEY"):
        if not LOCAL_RUN and (weakness := secret_key_weakness(key)):
            raise ImproperlyConfigured(
                f"SECRET_KEY is too weak for production: {weakness}. Generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
        return key
    if not LOCAL_RUN:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required in production")
    # Local runs keep one generated key on disk so the web process, the worker
    # and restarts all agree on it (sessions survive a restart).
    path = VAR_DIR / "secret_key"
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _audit_checkpoint_key() -> str:
    """Signs the audit trail's checkpoints; the database must never hold it
    (whoever can write the database must not be able to sign a forged head)."""
    if key := env_str("REVIEWQUEUE_AUDIT_CHECKPOINT_KEY"):
        if len(key) < 32:
            raise ImproperlyConfigured("REVIEWQUEUE_AUDIT_CHECKPOINT_KEY must be at least 32 characters")
        return key
    if not LOCAL_RUN:
        raise ImproperlyConfigured(
            "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY (or REVIEWQUEUE_AUDIT_CHECKPOINT_KEY_FILE) is required in production"
        )
    path = VAR_DIR / "audit_checkpoint_key"  # generated once, like the local secret key
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)  # atomic: processes starting at once all read the first one's key
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    return path.read_text().strip()


ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if LOCAL_RUN else []
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is required in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "reviewqueue",
    "riskrouter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "reviewqueue.core.middleware.ApiErrorEnvelopeMiddleware",
    "reviewqueue.core.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "reviewqueue.core.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the sign-in page saying so
]

ROOT_URLCONF = "config.urls"

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
                "reviewqueue.web.context.dashboard",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'reviewqueue.sqlite3'}"
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web process read while the worker writes; the busy
        # timeout and IMMEDIATE transactions turn lock contention into waiting
        # instead of "database is locked" errors.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        # A file, not the shared in-memory database: threads of the live
        # test server and worker processes lock and wait as in production.
        config["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    config["CONN_MAX_AGE"] = max_age = env_int("DATABASE_CONN_MAX_AGE", default=0)
    if config["ENGINE"] == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        # Only the submit path's server-bound statements are prepared (see
        # reviewqueue/actions/fastpath.py); the ORM's client-side binding never is.
        # Off behind PgBouncer in transaction mode, where a connection's next
        # transaction may run on another server session.
        prepared = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)
        options["prepare_threshold"] = 0 if prepared else None
        if pool_size := _pool_size(persistent=max_age > 0):
            # One psycopg pool per process shared by its threads: a request
            # takes a connection at its first query and returns it at its end,
            # a long-poll before it waits. Opening a connection per request
            # instead cost more than the rest of a submission (bench/submit_bench.py).
            options["pool"] = {"min_size": 2, "max_size": pool_size, "timeout": 10}
    return config


def _pool_size(*, persistent: bool) -> int:
    """DATABASE_POOL_MAX_SIZE, 16 unless persistent connections were asked
    for instead (DATABASE_CONN_MAX_AGE); 0 turns the pool off."""
    if "DATABASE_POOL_MAX_SIZE" not in os.environ:
        return 0 if persistent else 16
    size = env_int("DATABASE_POOL_MAX_SIZE", default=16)
    if size and persistent:
        raise ImproperlyConfigured(
            "DATABASE_POOL_MAX_SIZE and DATABASE_CONN_MAX_AGE: set one (a pooled connection is never kept by a thread)"
        )
    return size


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
# A Redis that stops answering fails its callers (503) instead of holding
# their web worker: its calls take well under a millisecond.
REDIS_TIMEOUT_SECONDS = 2
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing one
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = LOCAL_RUN

# Sign-in throttling (reviewqueue/signin.py): after REVIEWQUEUE_LOGIN_FAILURE_LIMIT
# failures for one username from one address, that pair is refused (the right
# password too) until REVIEWQUEUE_LOGIN_LOCKOUT has passed since the last try.
# Counted in Redis when there is one, else in the database: shared by every process.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = (
    "reviewqueue.credentials.signin.AuditedCacheHandler"
    if REDIS_URL
    else "reviewqueue.credentials.signin.AuditedDatabaseHandler"
)
AXES_CACHE = "default"
AXES_FAILURE_LIMIT = env_int("REVIEWQUEUE_LOGIN_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = env_duration("REVIEWQUEUE_LOGIN_LOCKOUT", default="15m")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_CALLABLE = "reviewqueue.credentials.signin.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures are audited (user.login_failed); successes need no second log
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Agent content is hostile (summaries, payloads, rationales): besides escaping,
# the browser may run only our own scripts and styles, never inline ones. The
# API answers JSON (its docs page, from ninja's own static files, and the admin
# were not built for this policy) and keeps the defaults.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/", "/admin/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

if not LOCAL_RUN:
    # HTTPS only: plain HTTP is redirected, browsers are told to never try it
    # again (HSTS), and cookies never travel without TLS.
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600, minimum=1)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # TLS ended at a proxy: trust its header only when told to, since a client
    # could send the same header to a server that no proxy fronts.
    if _tls_header := env_str("REVIEWQUEUE_TLS_PROXY_HEADER"):
        if not re.fullmatch(r"[A-Za-z0-9-]+", _tls_header):
            raise ImproperlyConfigured(f"REVIEWQUEUE_TLS_PROXY_HEADER={_tls_header!r} is not a header name")
        SECURE_PROXY_SSL_HEADER = ("HTTP_" + _tls_header.upper().replace("-", "_"), "https")
    if DEBUG:
        raise ImproperlyConfigured("DEBUG must be off in production")

# Celery: the embedded default keeps messages in files, so a bare machine needs
# no broker server; CELERY_BROKER_URL switches to Redis or RabbitMQ.
# (kombu wants a host even for files: "localhost" names this machine.)
EMBEDDED_BROKER = "filesystem://localhost/"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", EMBEDDED_BROKER)
if CELERY_BROKER_URL in (EMBEDDED_BROKER, "filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    for _folder in ("processed", "control"):
        (_queue_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # Deadlines live in the database; these sweeps only look at what is due.
    "sla-sweep": {"task": "reviewqueue.sla_sweep", "schedule": 1.0, "options": {"expires": 5}},
    "outbox-sweep": {"task": "reviewqueue.outbox_sweep", "schedule": 1.0, "options": {"expires": 5}},
    "housekeeping": {"task": "reviewqueue.housekeeping", "schedule": 300.0},
    # Signs the audit chain's head outside the database (see reviewqueue/audit.py).
    "audit-checkpoint": {
        "task": "reviewqueue.audit_checkpoint",
        "schedule": env_duration("REVIEWQUEUE_AUDIT_CHECKPOINT_INTERVAL", default="1m").total_seconds(),
    },
    "refusals-fold": {"task": "reviewqueue.refusals_fold", "schedule": 60.0, "options": {"expires": 50}},
}
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "reviewqueue@localhost")


def _webhook_allowed_networks() -> list[str]:
    from reviewqueue.core.netguard import parse_allow_list

    entries = env_list("REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS", default=[])
    try:
        parse_allow_list(entries)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None
    return entries


# Product settings.
REVIEWQUEUE: dict[str, Any] = {
    "MAX_BODY_BYTES": 64 * 1024,
    "MAX_SUMMARY_CHARS": 2000,
    "MAX_JSON_DEPTH": 32,
    "IDEMPOTENCY_TTL": env_duration("REVIEWQUEUE_IDEMPOTENCY_TTL", default="24h"),
    "SLA_BLOCKING": env_duration("REVIEWQUEUE_SLA_BLOCKING", default="15m"),
    "SLA_ASYNC_REVIEW": env_duration("REVIEWQUEUE_SLA_ASYNC_REVIEW", default="24h"),
    "WAIT_MAX_SECONDS": 60,
    "WAIT_POLL_SECONDS": 0.05,
    # Long-polls one agent may hold at once (each holds a web thread), and how
    # often a waiting long-poll checks that its key is still live.
    "WAIT_MAX_PER_AGENT": env_int("REVIEWQUEUE_WAIT_MAX_PER_AGENT", default=16, minimum=1),
    "WAIT_KEY_CHECK_SECONDS": 1.0,
    # Refused submissions: the first per agent, kind and window is audited in full, the rest counted.
    "REFUSAL_AUDIT_WINDOW": env_duration("REVIEWQUEUE_REFUSAL_AUDIT_WINDOW", default="5m"),
    "OUTBOX_BACKOFF_SECONDS": float(env_str("REVIEWQUEUE_OUTBOX_BACKOFF_SECONDS", "2")),
    "OUTBOX_TIMEOUT_SECONDS": 5,
    "BREAKER_FAILURES": env_int("REVIEWQUEUE_BREAKER_FAILURES", default=5, minimum=1),
    "BREAKER_WINDOW": env_duration("REVIEWQUEUE_BREAKER_WINDOW", default="60s"),
    "BREAKER_COOLDOWN": env_duration("REVIEWQUEUE_BREAKER_COOLDOWN", default="30s"),
    # Internal receivers webhooks and notification channels may reach anyway (reviewqueue/netguard.py).
    "WEBHOOK_ALLOWED_NETWORKS": _webhook_allowed_networks(),
    # "cache" needs atomic increments (Redis); otherwise counters live in the database.
    "RATE_LIMIT_BACKEND": "cache" if REDIS_URL else "database",
    # The reviewer's dashboard.
    "CLAIM_LEASE": env_duration("REVIEWQUEUE_CLAIM_LEASE", default="5m"),
    "QUEUE_PAGE_SIZE": 50,
    "QUEUE_POLL_SECONDS": env_int("REVIEWQUEUE_QUEUE_POLL_SECONDS", default=3),
    # Signed checkpoints of the audit chain's head, kept outside the database.
    "AUDIT_CHECKPOINT_PATH": Path(env_str("REVIEWQUEUE_AUDIT_CHECKPOINT_PATH") or VAR_DIR / "audit-checkpoints.jsonl"),
    "AUDIT_CHECKPOINT_KEY": _audit_checkpoint_key(),
}

# The risk router learns from reviewers' decisions (riskrouter never imports reviewqueue).
RISKROUTER_FEEDBACK_SOURCE = "reviewqueue.queries.feedback.labels"
RISKROUTER_COMPANY_DOMAINS = env_list("RISKROUTER_COMPANY_DOMAINS", default=["acme.example"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
