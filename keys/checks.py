"""System checks of keys' settings (`manage.py check`; the production ones with `--deploy`).

Every KEYS_* setting has a default (keys/conf.py), so none is ever missing; these
checks name a value that cannot work, and with --deploy a development stand-in that
production must replace.
"""

import base64
import binascii
from numbers import Real

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import derived_encryption_keys, derived_lookup_secret, temporary_state_dir

# Settings that are counts or durations: below the bound they cannot mean anything.
MINIMUMS = {
    "KEYS_WARNING_CHECK_MINUTES": 0,
    "KEYS_LOG_RETENTION_CHECK_MINUTES": 0,
    "KEYS_RETRY_AFTER_SECONDS": 0,
    "KEYS_DECISION_CACHE_SECONDS": 0,
    "KEYS_DECISION_CACHE_SIZE": 1,
    "KEYS_LOG_BODY_LIMIT": 0,
    "KEYS_LAST_USED_INTERVAL": 0,
    "KEYS_USAGE_FLUSH_SECONDS": 0,
    "KEYS_ASYNC_TIMEOUT_SECONDS": 1,
    "KEYS_WORKER_RETRY_MAX_SECONDS": 0,
    "KEYS_MAX_BODY_BYTES": 1,
    "KEYS_TRUSTED_PROXIES": 0,
    "KEYS_THROTTLE_REFUSALS": 0,
    "KEYS_THROTTLE_WINDOW": 1,
    "KEYS_THROTTLE_BLOCK": 1,
}
# Django's email backends that deliver to nobody: fine in development, not where keys expire for real
# (locmem too, but only a test runner sets that one, and pytest-django always does).
NOWHERE_EMAIL = ("console", "dummy", "filebased")
CHOICES = {
    "KEYS_SHARED_COUNTERS": ("file", "cache"),
    "KEYS_CHANGE_MARKER": ("file", "cache"),
    "KEYS_OPENAPI_UNSERVED": ("list", "omit"),
}


def is_fernet_key(key) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (AttributeError, ValueError, UnicodeEncodeError, binascii.Error):
        return False


@register()
def check_worker_heartbeat(app_configs, **kwargs) -> list[Error]:
    """A worker is gone when no heartbeat is fresher than KEYS_WORKER_STALE_SECONDS: with a
    bound under two heartbeat intervals, one late beat would report a live worker gone."""
    beat, stale = settings.KEYS_WORKER_HEARTBEAT_SECONDS, settings.KEYS_WORKER_STALE_SECONDS
    if beat <= 0 or stale < 2 * beat:
        return [
            Error(
                f"KEYS_WORKER_STALE_SECONDS ({stale:g}) must be at least twice KEYS_WORKER_HEARTBEAT_SECONDS "
                f"({beat:g}), which must be above 0.",
                hint="Keep the defaults (5 and 60), or raise KEYS_WORKER_STALE_SECONDS.",
                id="keys.E001",
            )
        ]
    return []


@register()
def check_values(app_configs, **kwargs) -> list[Error]:
    """Values of the wrong kind would fail at first use, as a 500 in the middle of an API call."""
    errors = []
    for name, minimum in MINIMUMS.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, Real) or value < minimum:
            errors.append(Error(f"{name} is {value!r}; it must be a number of at least {minimum}.", id="keys.E002"))
    for name, choices in CHOICES.items():
        if (value := getattr(settings, name)) not in choices:
            errors.append(Error(f"{name} is {value!r}; use one of {', '.join(choices)}.", id="keys.E003"))
    keys = settings.KEYS_ENCRYPTION_KEYS
    if isinstance(keys, str) or not isinstance(keys, list | tuple) or not keys:
        errors.append(Error("KEYS_ENCRYPTION_KEYS must be a non-empty list of Fernet keys.", id="keys.E004"))
    else:
        errors += [
            Error(
                f"KEYS_ENCRYPTION_KEYS: key {number} is not a Fernet key (32 bytes, URL-safe base64).",
                hint="Generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="keys.E005",
            )
            for number, key in enumerate(keys, start=1)
            if not is_fernet_key(key)
        ]
    if not isinstance(settings.KEYS_LOOKUP_SECRET, str) or not settings.KEYS_LOOKUP_SECRET:
        errors.append(Error("KEYS_LOOKUP_SECRET must be a non-empty string.", id="keys.E006"))
    modules = settings.KEYS_HANDLER_MODULES
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        errors.append(Error("KEYS_HANDLER_MODULES must be a list of module names.", id="keys.E007"))
    return errors


@register()
def check_warning_days(app_configs, **kwargs) -> list[Error]:
    """The warnings' thresholds (keys/warnings.py): a wrong one would fail in the task worker's
    schedule, where nobody sees it, and the keys table."""
    value = settings.KEYS_EXPIRY_WARNING_DAYS
    days = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(days, list | tuple) or not all(
        isinstance(day, int) and not isinstance(day, bool) and day >= 1 for day in days
    ):
        return [
            Error(
                f"KEYS_EXPIRY_WARNING_DAYS is {value!r}; it must be a list of whole numbers of days, each at least 1.",
                hint="For example [14, 3]: a warning 14 days and 3 days before a key or its logging ends; [] for none.",
                id="keys.E030",
            )
        ]
    return []


@register()
def check_log_read_database(app_configs, **kwargs) -> list[Error]:
    """The log viewer, its CSV and usage read from this alias: an unknown one would be a 500 on every
    such page, and nowhere else."""
    alias = settings.KEYS_LOG_READ_DATABASE
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        return [
            Error(
                f"KEYS_LOG_READ_DATABASE is {alias!r}, which is not an alias in DATABASES.",
                hint=f"Use one of {', '.join(map(repr, settings.DATABASES))} (a read replica of the documents, or "
                "'default').",
                id="keys.E050",
            )
        ]
    return []


@register()
def check_log_partition(app_configs, **kwargs) -> list[Error]:
    """The documents' partitions are made by this span (keys/partitions.py): a value the task
    worker could not read would leave every new document in the DEFAULT partition."""
    from .partitions import SPANS

    span = settings.KEYS_LOG_PARTITION
    if span in SPANS:
        return []
    return [
        Error(
            f"KEYS_LOG_PARTITION is {span!r}; use one of {', '.join(map(repr, SPANS))}.",
            hint="What one partition of the API documents holds on PostgreSQL: 'week' unless you know better.",
            id="keys.E032",
        )
    ]


@register()
def check_log_retention(app_configs, **kwargs) -> list[Error]:
    """Retention deletes documents (keys/retention.py): a value it cannot read must stop the
    deploy, not fail quietly in the task worker's schedule, nor delete what it should keep."""
    days = settings.KEYS_LOG_RETENTION_DAYS
    if days is None or (isinstance(days, int) and not isinstance(days, bool) and days >= 1):
        return []
    return [
        Error(
            f"KEYS_LOG_RETENTION_DAYS is {days!r}; it must be None (keep every log) or a whole number of days, "
            "at least 1.",
            hint="For example 90: each task worker deletes the finished API documents older than 90 days.",
            id="keys.E031",
        )
    ]


@register(Tags.security, deploy=True)
def check_production_settings(app_configs, **kwargs) -> list[Warning]:
    """The development stand-ins of keys/conf.py, which production must replace."""
    warnings = []
    if derived_lookup_secret() == settings.KEYS_LOOKUP_SECRET:
        warnings.append(
            Warning(
                "KEYS_LOOKUP_SECRET is not set: it is derived from SECRET_KEY, so rotating SECRET_KEY "
                "would make every API key unknown.",
                hint="Set KEYS_LOOKUP_SECRET to a long random string of its own.",
                id="keys.W001",
            )
        )
    if list(settings.KEYS_ENCRYPTION_KEYS or []) == derived_encryption_keys():
        warnings.append(
            Warning(
                "KEYS_ENCRYPTION_KEYS is not set: the key is derived from SECRET_KEY, so rotating SECRET_KEY "
                "would make every stored key value unreadable.",
                hint="Set KEYS_ENCRYPTION_KEYS to a list of Fernet keys (Fernet.generate_key()).",
                id="keys.W002",
            )
        )
    if str(settings.KEYS_SHARED_STATE_DIR) == str(temporary_state_dir()):
        warnings.append(
            Warning(
                f"KEYS_SHARED_STATE_DIR is not set: the throttle counts and change marker live in "
                f"{settings.KEYS_SHARED_STATE_DIR}, which the system may clean.",
                hint="Set KEYS_SHARED_STATE_DIR to a directory every worker process can write.",
                id="keys.W003",
            )
        )
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2] if "." in settings.EMAIL_BACKEND else ""
    if settings.KEYS_EXPIRY_WARNING_DAYS and backend in NOWHERE_EMAIL:
        warnings.append(
            Warning(
                f"EMAIL_BACKEND is Django's {backend} backend: the warnings before keys expire or their logging "
                "ends reach nobody.",
                hint="Set EMAIL_BACKEND (the demo: EMAIL_URL) to a mail server, or KEYS_EXPIRY_WARNING_DAYS = [].",
                id="keys.W030",
            )
        )
    return warnings
