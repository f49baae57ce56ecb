"""Settings for CHQ keys, read from the environment (and an optional `.env`).

`make run` writes a `.env` for local development (DEBUG on, a random
SECRET_KEY); production sets the same variables in its environment.
`.env.example` documents each one.
"""

import base64
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A missing secret in production is a configuration error, not something to
# paper over with a default that would sign every session with a public value.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "insecure-development-only-key"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (or in .env; "
            "`make run` writes one for development), or set DEBUG=true for local use."
        )


def _required_secret(name: str, development_value, *, parse=env.str):
    """A secret production must be given; a fixed, public stand-in only with DEBUG on."""
    value = parse(name, default=None)
    if value:
        return value
    if DEBUG:
        return development_value
    raise ImproperlyConfigured(
        f"{name} is not set. Set it in the environment (or in .env; `make run` writes one for development). "
        "Generate it with: python -m chq.dotenv --print"
    )


# API key values at rest (keys/sealing.py): lookups by HMAC digest under this secret, and the values
# themselves encrypted with these Fernet keys (the first encrypts; all decrypt, for rotation).
KEYS_LOOKUP_SECRET = _required_secret("KEYS_LOOKUP_SECRET", "insecure-development-only-lookup-secret")
KEYS_ENCRYPTION_KEYS = _required_secret(
    "KEYS_ENCRYPTION_KEYS", ["aW5zZWN1cmUtZGV2ZWxvcG1lbnQtb25seS1rZXktMzI="], parse=env.list
)
for _number, _key in enumerate(KEYS_ENCRYPTION_KEYS, start=1):
    try:
        _valid = len(base64.urlsafe_b64decode(_key.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError):
        _valid = False
    if not _valid:
        raise ImproperlyConfigured(
            f"KEYS_ENCRYPTION_KEYS: key {_number} is not a Fernet key (32 bytes, URL-safe base64). "
            "Generate one with: python -m chq.dotenv --print"
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "django_htmx",
    "template_partials",
    "django_tables2",
    "axes",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally at /integration/api/index
    # Before django_tasks_db: keys' `db_worker` (keys/management/commands/) replaces the library's.
    "keys",
    "django_tasks",
    "django_tasks_db",
]

MIDDLEWARE = [
    # First: answers API calls through KEYS_API_MIDDLEWARE alone; the rest is the site's chain.
    "keys.chqapi.middleware.ApiMiddleware",
    # A request for another host gets a 400 before any other work (and no cookie).
    "keys.chqapi.errors.AllowedHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it answers a locked-out login after the view has run.
    "axes.middleware.AxesMiddleware",
]

# What an API call passes through (keys/chqapi/middleware.py), outermost first: the Host check, then
# the security headers. A host adds its own here (CORS, request ids, tracing) to have them on the API.
KEYS_API_MIDDLEWARE = [
    "keys.chqapi.errors.AllowedHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a login while the username is locked out from that address.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins: after AXES_FAILURE_LIMIT failures for one username from one client
# address, that pair is locked for AXES_COOLOFF_TIME. Locking the pair (not the
# address alone) keeps one guesser from locking everyone behind a shared address
# out, and (not the username alone) keeps a stranger from locking a user out.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The same client-address rules as throttling and the audit trail (KEYS_TRUSTED_PROXIES).
AXES_CLIENT_IP_CALLABLE = "keys.clients.client_address"
AXES_VERBOSE = False

ROOT_URLCONF = "chq.urls"

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

WSGI_APPLICATION = "chq.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Persistent connections: opening one (and SQLite's PRAGMAs) cost more than a whole
# guarded call. Health checks replace a connection the server dropped.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers work while a call log is written; IMMEDIATE takes the write
    # lock at BEGIN so that two writers wait for each other instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
    # Tests use a file too: an in-memory database shared between threads locks whole
    # tables and ignores busy_timeout, which no deployment does (live-server tests).
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}

# REDIS_URL is a shorthand for CACHE_URL=redis://...
CACHES = {"default": env.cache_url("CACHE_URL", default=env.str("REDIS_URL", default="locmemcache://"))}
_SHARED_CACHE = "redis" in CACHES["default"]["BACKEND"].lower()
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same cache with one Redis client per pool instead of one per operation (chq/cache.py).
    CACHES["default"]["BACKEND"] = "chq.cache.RedisCache"

# --- keys app -------------------------------------------------------------------
# Files the app keeps beside its database: shared counters (throttle) and the
# spool of call-log rows the database refused (see keys/shared.py, keys/chqapi/spool.py).
KEYS_SHARED_STATE_DIR = env.path("KEYS_SHARED_STATE_DIR", default=BASE_DIR / "var")
KEYS_SPOOL_DIR = env.path("KEYS_SPOOL_DIR", default=Path(KEYS_SHARED_STATE_DIR) / "spool")
# Where the throttle's counts live: "file" (a memory-mapped table every worker on this
# host shares) or "cache" (the configured cache; only sensible when it is Redis, shared by every host).
# A key that expires within this many days is flagged in the keys table.
KEYS_EXPIRY_WARNING_DAYS = env.int("KEYS_EXPIRY_WARNING_DAYS", default=7)
KEYS_SHARED_COUNTERS = env.str("KEYS_SHARED_COUNTERS", default="cache" if _SHARED_CACHE else "file")
# Retry-After of a 503 answer while the database or Redis cannot be reached; an outage is
# logged as over when a call is answered this long after its last failure (keys/outages.py).
KEYS_RETRY_AFTER_SECONDS = env.int("KEYS_RETRY_AFTER_SECONDS", default=5)
# Each worker keeps the key states it has read (zero queries on a warm call) and
# trusts them only while the change marker is unchanged (keys/freshness.py):
# "file" on one host (the embedded default), "cache" when a shared cache (Redis)
# lets several hosts see it. Off: one indexed query per call.
KEYS_DECISION_CACHE = env.bool("KEYS_DECISION_CACHE", default=True)
KEYS_CHANGE_MARKER = env.str("KEYS_CHANGE_MARKER", default="cache" if _SHARED_CACHE else "file")
# Upper bound on a cached state's age: only changes made outside Django (raw SQL) wait for it.
KEYS_DECISION_CACHE_SECONDS = env.int("KEYS_DECISION_CACHE_SECONDS", default=300)
KEYS_DECISION_CACHE_SIZE = env.int("KEYS_DECISION_CACHE_SIZE", default=10_000)
# Request and response bodies stored in a call log are cut at this many characters.
KEYS_LOG_BODY_LIMIT = env.int("KEYS_LOG_BODY_LIMIT", default=64 * 1024)
# "last used" is written at most once per this many seconds per key and per grant.
KEYS_LAST_USED_INTERVAL = env.int("KEYS_LAST_USED_INTERVAL", default=60)
# Usage counts (keys/usage.py) are added up in each worker and stored this often: a crash loses at most this much.
KEYS_USAGE_FLUSH_SECONDS = env.float("KEYS_USAGE_FLUSH_SECONDS", default=5.0)
# Modules that register /chqapi/ handlers (keys.chqapi.guard.register), imported at start-up.
KEYS_HANDLER_MODULES = env.list("KEYS_HANDLER_MODULES", default=[])
# Asynchronous API documents run in a task worker through Django's tasks API (the
# django-tasks backport). The default keeps the queue in the database (worker:
# `manage.py db_worker`). TASKS_BACKEND=rq keeps it in Redis (TASKS_REDIS_URL,
# default REDIS_URL; worker: `manage.py rqworker default --job-class django_tasks_rq.Job`).
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
if TASKS_BACKEND == "rq":
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {"default": {"URL": env.str("TASKS_REDIS_URL", default=env.str("REDIS_URL", default=""))}}
    if not RQ_QUEUES["default"]["URL"]:
        raise ImproperlyConfigured("TASKS_BACKEND=rq needs TASKS_REDIS_URL (or REDIS_URL): where the queue lives.")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
elif TASKS_BACKEND == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
else:
    raise ImproperlyConfigured(f"TASKS_BACKEND is {TASKS_BACKEND!r}; use database (the default) or rq.")
# A document whose work started this many seconds ago and has not finished (its
# worker was killed, say) is reported as Error, never InProcess for ever.
KEYS_ASYNC_TIMEOUT_SECONDS = env.int("KEYS_ASYNC_TIMEOUT_SECONDS", default=600)
# The task worker (keys/chqapi/worker.py) writes a heartbeat this often (seconds). It is
# gone when none is fresher than KEYS_WORKER_STALE_SECONDS: /healthz says "worker": "gone",
# and status tells the caller of a document queued longer than that that it waits for one.
KEYS_WORKER_HEARTBEAT_SECONDS = env.float("KEYS_WORKER_HEARTBEAT_SECONDS", default=5.0)
KEYS_WORKER_STALE_SECONDS = env.float("KEYS_WORKER_STALE_SECONDS", default=60.0)
# While the database fails, the worker retries after 0.5 s, doubling up to this many seconds.
KEYS_WORKER_RETRY_MAX_SECONDS = env.float("KEYS_WORKER_RETRY_MAX_SECONDS", default=10.0)
# API request bodies over this size are refused with 413 before any other work.
KEYS_MAX_BODY_BYTES = env.int("KEYS_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = KEYS_MAX_BODY_BYTES
# The API key dialog posts up to three fields per API type, and the catalog may hold thousands.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000
# How many reverse proxies stand in front of the app and append to X-Forwarded-For
# (0: use REMOTE_ADDR). Client addresses feed throttling, call logs and the audit trail.
KEYS_TRUSTED_PROXIES = env.int("KEYS_TRUSTED_PROXIES", default=0)
# After this many refused ApiKey attempts from one address within the window (seconds),
# the address gets 429 for KEYS_THROTTLE_BLOCK seconds. 0 turns throttling off.
KEYS_THROTTLE_REFUSALS = env.int("KEYS_THROTTLE_REFUSALS", default=20)
KEYS_THROTTLE_WINDOW = env.int("KEYS_THROTTLE_WINDOW", default=60)
KEYS_THROTTLE_BLOCK = env.int("KEYS_THROTTLE_BLOCK", default=60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "keys:settings"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The site's time zone decides where a "logging until" day ends.
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names in production (after collectstatic); plain files while developing.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- security -------------------------------------------------------------------------
# Production defaults are strict; each can be relaxed from the environment
# (e.g. SECURE_SSL_REDIRECT=false when a proxy already redirects).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Only the app's own scripts and styles (htmx is served from the app's static files).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

DJANGO_TABLES2_TEMPLATE = "keys/table.html"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"skip_api_answers": {"()": "chq.logging.SkipDeliberateApiAnswers"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["skip_api_answers"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print request warnings a second time.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        # Refused API calls: reason, method, path, client address; never the key value.
        "keys.security": {"level": LOG_LEVEL},
    },
}
