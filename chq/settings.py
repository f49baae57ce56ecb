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
    "keys.chqapi",  # CHQ's API on the keys app: /chqapi/, its handlers, API documents, the Swagger page
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
# A read replica for the pane's log viewer, its CSV and usage (KEYS_LOG_READ_DATABASE): the API's
# own reads stay on "default", where a caller finds its document the moment it is answered.
if env.str("LOG_READ_DATABASE_URL", default=""):
    DATABASES["log_reads"] = env.db("LOG_READ_DATABASE_URL") | {"CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"]}
    DATABASES["log_reads"]["CONN_HEALTH_CHECKS"] = True
    KEYS_LOG_READ_DATABASE = "log_reads"

# REDIS_URL is a shorthand for CACHE_URL=redis://...
CACHES = {"default": env.cache_url("CACHE_URL", default=env.str("REDIS_URL", default="locmemcache://"))}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same cache with one Redis client per pool instead of one per operation (keys/cache.py).
    CACHES["default"]["BACKEND"] = "keys.cache.RedisCache"

# Email (the warnings before a key or its logging ends, keys/warnings.py): EMAIL_URL names the
# backend, e.g. smtp+tls://user:password@mail.example.com:587; in development the console backend
# prints each message in the task worker's output.
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CHQ keys <keys@localhost>")
# Django's own default waits for a silent mail server forever, holding a warning's claim past its lease.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- keys app -------------------------------------------------------------------
# Every KEYS_* setting has its default in keys/conf.py (README: "Settings of the keys app").
# The demo names its own base template and keeps its shared state beside its database, in
# var/; any other KEYS_* setting comes from the environment when it is set there (as
# deployments and tests do), else the app's default holds.
KEYS_BASE_TEMPLATE = "base.html"
KEYS_SHARED_STATE_DIR = env.path("KEYS_SHARED_STATE_DIR", default=BASE_DIR / "var")


def _days(name: str) -> list[int]:
    """A comma-separated list of days (KEYS_EXPIRY_WARNING_DAYS=14,3; empty: none)."""
    try:
        return env.list(name, cast=int)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={env.str(name)!r}: give whole numbers of days, comma-separated, e.g. 14,3."
        ) from None


_FROM_ENVIRONMENT = {
    env.str: ["KEYS_SHARED_COUNTERS", "KEYS_CHANGE_MARKER"],
    env.path: ["KEYS_SPOOL_DIR"],
    env.bool: ["KEYS_DECISION_CACHE"],
    env.list: ["KEYS_HANDLER_MODULES"],
    env.int: [
        "KEYS_RETRY_AFTER_SECONDS",
        "KEYS_DECISION_CACHE_SECONDS",
        "KEYS_DECISION_CACHE_SIZE",
        "KEYS_LOG_BODY_LIMIT",
        "KEYS_LAST_USED_INTERVAL",
        "KEYS_ASYNC_TIMEOUT_SECONDS",
        "KEYS_MAX_BODY_BYTES",
        "KEYS_TRUSTED_PROXIES",
        "KEYS_THROTTLE_REFUSALS",
        "KEYS_THROTTLE_WINDOW",
        "KEYS_THROTTLE_BLOCK",
        "KEYS_LOG_RETENTION_DAYS",
    ],
    _days: ["KEYS_EXPIRY_WARNING_DAYS"],
    env.float: [
        "KEYS_WARNING_CHECK_MINUTES",
        "KEYS_LOG_RETENTION_CHECK_MINUTES",
        "KEYS_USAGE_FLUSH_SECONDS",
        "KEYS_WORKER_HEARTBEAT_SECONDS",
        "KEYS_WORKER_STALE_SECONDS",
        "KEYS_WORKER_RETRY_MAX_SECONDS",
    ],
}
for _parse, _names in _FROM_ENVIRONMENT.items():
    for _name in _names:
        if _name in env:
            globals()[_name] = _parse(_name)
# The API types this project declares: CHQ's own 126 (keys.catalog.CHQ). `sync_api_types` syncs exactly these.
KEYS_CATALOGS = ["keys.catalog:api_types.json"]
# The OpenAPI document lists the catalog's types no handler serves, each with its 501 ("omit": leaves
# them out, the app's default): CHQ's Swagger page shows its whole catalog, and so does the demo's.
KEYS_OPENAPI_UNSERVED = env.str("KEYS_OPENAPI_UNSERVED", default="list")
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
# Django's own bound on a request body follows the API's (KEYS_MAX_BODY_BYTES: a 413 before any other work).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("KEYS_MAX_BODY_BYTES", default=1024 * 1024)
# The API key dialog posts up to three fields per API type, and the catalog may hold thousands.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

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

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"skip_api_answers": {"()": "keys.chqapi.log_filters.SkipDeliberateApiAnswers"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["skip_api_answers"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print request warnings a second time.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        # Refused API calls: reason, method, path, client address; never the key value.
        "keys.security": {"level": LOG_LEVEL},
    },
}
