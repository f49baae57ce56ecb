"""Every KEYS_* setting and its default, in one place (README: "Settings of the keys app").

A host sets only what it wants different. django-appconf writes each default into
`django.conf.settings` when this module is imported (keys/models.py imports it, so
it happens while the app registry loads, before `ready()`, checks or any request),
so the rest of the app keeps reading `settings.KEYS_…` as before.

The defaults are for development: the app runs in a fresh `startproject` with no
KEYS_* setting at all. The secrets are then derived from SECRET_KEY and the shared
state lives in a temporary directory; `manage.py check --deploy` (keys/checks.py)
names each such stand-in, because production must set them itself.
"""

import base64
import hashlib
import hmac
import tempfile
from pathlib import Path

from appconf import AppConf
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


def derived_secret(purpose: str) -> bytes:
    """32 bytes from SECRET_KEY for one purpose. A development stand-in only: rotating
    SECRET_KEY would change it and make every stored key unreadable."""
    return hmac.new(str(settings.SECRET_KEY).encode(), f"keys.{purpose}".encode(), hashlib.sha256).digest()


def derived_lookup_secret() -> str:
    return derived_secret("lookup-secret").hex()


def derived_encryption_keys() -> list[str]:
    return [base64.urlsafe_b64encode(derived_secret("encryption-key")).decode("ascii")]


def temporary_state_dir() -> Path:
    """A directory in the system's temporary directory, one per database: the processes that
    share a database share the throttle counts and the change marker; another project on the
    same machine (another database) gets its own."""
    database = settings.DATABASES.get("default", {})
    identity = "|".join(str(database.get(part, "")) for part in ("ENGINE", "NAME", "HOST", "PORT"))
    return Path(tempfile.gettempdir()) / f"django-keys-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def _shared_cache() -> bool:
    """Whether the default cache is Redis, which every host sees (not one process's memory)."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    return "redis" in backend.lower()


class KeysConf(AppConf):
    # Modules that register API handlers (keys.guard.register), imported by ready().
    HANDLER_MODULES: list[str] = []
    # The API types the project declares: catalog files (paths, or "package:resource" like keys.catalog.CHQ).
    CATALOGS: list[str] = []
    # The middleware API calls run through (outermost first; keys/chqapi/middleware.py), instead of
    # the site's whole MIDDLEWARE: by default a disallowed host is a JSON 400 before any other work,
    # then SecurityMiddleware's HTTPS redirect, nosniff, HSTS, referrer and opener policies (Django's
    # own, with its headers made once: keys/chqapi/headers.py).
    API_MIDDLEWARE = [
        "keys.chqapi.errors.AllowedHostMiddleware",
        "keys.chqapi.headers.SecurityMiddleware",
    ]
    # The OpenAPI document: "omit" a catalog type no handler serves, or "list" it with its 501 answer.
    OPENAPI_UNSERVED = "omit"
    # The template the pane's pages extend (blocks: title, crumbs, main); the app's own works standalone.
    BASE_TEMPLATE = "keys/base.html"
    # Lookup digests of key values are HMACs under this secret (keys/sealing.py). None: derived from SECRET_KEY.
    LOOKUP_SECRET: str | None = None
    # Fernet keys encrypting key values at rest: the first encrypts, all decrypt. None: one derived from SECRET_KEY.
    ENCRYPTION_KEYS: list[str] | None = None
    # Files every worker process on one machine shares: throttle counts, change marker. None: a temporary directory.
    SHARED_STATE_DIR: str | Path | None = None
    # Call-log rows the database refused, replayed later (keys/calllog/spool.py). None: SHARED_STATE_DIR/spool.
    SPOOL_DIR: str | Path | None = None
    # Where the throttle counts live: "file" (SHARED_STATE_DIR) or "cache" (the default cache). None: by the cache.
    SHARED_COUNTERS: str | None = None
    # Keep key states per worker (zero queries on a warm call), trusted while the change marker stands.
    DECISION_CACHE = True
    # Where the change marker lives: "file" or "cache". None: "cache" when the default cache is Redis.
    CHANGE_MARKER: str | None = None
    DECISION_CACHE_SECONDS = 300
    DECISION_CACHE_SIZE = 10_000
    # Warnings before a key expires or its logging ends (keys/warnings.py): thresholds in days. An end
    # within the largest is listed on the pane and by keys_due, and flagged in the keys table; an email
    # goes once per threshold. [] turns warnings off; a single number is one threshold.
    EXPIRY_WARNING_DAYS = [7, 1]
    # Each task worker looks for warnings to send this often (0: never; `keys_due --send` from cron instead).
    WARNING_CHECK_MINUTES = 15.0
    # Automatic log retention (keys/retention.py): each task worker deletes the finished API documents
    # created before the start of the day this many days ago (today and that many days before it stay).
    # None: never (CHQ keeps logs until `manage.py purge_api_logs` deletes them).
    LOG_RETENTION_DAYS: int | None = None
    # How often each task worker runs retention while LOG_RETENTION_DAYS is set.
    LOG_RETENTION_CHECK_MINUTES = 60.0
    # PostgreSQL: what one partition of the API documents holds (keys/partitions.py): "day", "week"
    # (Monday to Monday, UTC) or "month". Retention drops whole partitions; every query that names no
    # time (status by id, an export's first page) plans and probes each partition, so fewer is faster:
    # a week keeps a year at 53. "day" suits a site that writes tens of millions a day and keeps days.
    LOG_PARTITION = "week"
    # Retry-After of a 503 while the database or Redis cannot be reached.
    RETRY_AFTER_SECONDS = 5
    # Stored request and response bodies are cut at this many characters.
    LOG_BODY_LIMIT = 64 * 1024
    # The database alias (a read replica, say) the pane's log viewer, its CSV and usage read from. Never
    # status, getdata or API Document Export: a caller reads its own write at once, which a lagging replica breaks.
    LOG_READ_DATABASE = "default"
    # "last used" is written at most once per this many seconds per key and per grant.
    LAST_USED_INTERVAL = 60
    # Usage counts are added up in each worker and stored this often.
    USAGE_FLUSH_SECONDS = 5.0
    # A document started this long ago and not finished is reported as Error.
    ASYNC_TIMEOUT_SECONDS = 600
    WORKER_HEARTBEAT_SECONDS = 5.0
    WORKER_STALE_SECONDS = 60.0
    WORKER_RETRY_MAX_SECONDS = 10.0
    # API request bodies over this size are refused with 413 before any other work.
    MAX_BODY_BYTES = 1024 * 1024
    # Reverse proxies in front of the app that append to X-Forwarded-For (0: REMOTE_ADDR).
    TRUSTED_PROXIES = 0
    # After this many refused attempts from one address within THROTTLE_WINDOW seconds, 429 for THROTTLE_BLOCK.
    THROTTLE_REFUSALS = 20
    THROTTLE_WINDOW = 60
    THROTTLE_BLOCK = 60

    class Meta:
        prefix = "keys"

    def configure_lookup_secret(self, value):
        return value or derived_lookup_secret()

    def configure_encryption_keys(self, value):
        return value or derived_encryption_keys()

    def configure_shared_state_dir(self, value):
        return value or temporary_state_dir()

    def configure_shared_counters(self, value):
        return value or ("cache" if _shared_cache() else "file")

    def configure_change_marker(self, value):
        return value or ("cache" if _shared_cache() else "file")

    def configure(self):
        # After the others: the spool's default follows the configured state directory.
        data = self.configured_data
        if not data["SPOOL_DIR"]:
            data["SPOOL_DIR"] = Path(data["SHARED_STATE_DIR"]) / "spool"
        return data


# The settings an API call reads on its way through the guard (shared state, throttle, body
# limit, client address, decision cache), as plain attributes: settings.X goes through
# LazySettings' attribute hooks each time (0.2 µs; fifteen of them were 3 µs of an allowed
# call's ~80, bench/profile_call.py). Settings do not change in a running process; a test's
# override_settings does change them, and sends setting_changed, which reloads these.
HOT = (
    "SHARED_COUNTERS",
    "SHARED_STATE_DIR",
    "CHANGE_MARKER",
    "MAX_BODY_BYTES",
    "THROTTLE_REFUSALS",
    "THROTTLE_WINDOW",
    "THROTTLE_BLOCK",
    "TRUSTED_PROXIES",
    "DECISION_CACHE",
    "DECISION_CACHE_SECONDS",
    "DECISION_CACHE_SIZE",
)


class Hot:
    """Each attribute is the setting KEYS_<name>, read once (and again whenever a test changes a KEYS_ setting)."""

    SHARED_COUNTERS: str
    SHARED_STATE_DIR: str | Path
    CHANGE_MARKER: str
    MAX_BODY_BYTES: int
    THROTTLE_REFUSALS: int
    THROTTLE_WINDOW: int
    THROTTLE_BLOCK: int
    TRUSTED_PROXIES: int
    DECISION_CACHE: bool
    DECISION_CACHE_SECONDS: float
    DECISION_CACHE_SIZE: int

    def __init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        from django import conf  # the settings themselves, whatever a test put in this module's place

        for name in HOT:
            setattr(self, name, getattr(conf.settings, f"KEYS_{name}"))


hot = Hot()


@receiver(setting_changed)
def _reload_hot(setting: str, **kwargs) -> None:
    if setting.startswith("KEYS_"):
        hot.reload()
