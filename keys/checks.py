"""System checks of keys' settings (`manage.py check`)."""

from django.conf import settings
from django.core.checks import Error, register


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
