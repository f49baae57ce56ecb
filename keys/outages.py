"""Outages of what every API call stands on: the database, and the shared state in
Redis (the change marker, the throttle's counts and blocks). The one owner of what
an outage is, how a call is answered during one, and how it is logged.

- `ERRORS`: the exceptions that mean one of them failed (Django's DatabaseError,
  redis-py's RedisError, which covers a refused connection, a timeout, a Redis
  still loading its data or refusing writes).
- `unavailable(exc, context)`: the answer, 503 with `Retry-After:
  KEYS_RETRY_AFTER_SECONDS` and a JSON Message saying which part cannot be
  reached, never the error itself. The first failure of an outage is logged
  with its traceback; each later one in one short line (`context`, and the
  exception's class): 1,000 refused calls are 1,000 lines and one traceback.
- `settle()`: called for every call that got past the shared state and the
  decision; one test of a dict while nothing fails. An outage ends at the first
  such call that comes `KEYS_RETRY_AFTER_SECONDS` (the wait callers were told)
  after its last failure: one line says so, how long it lasted and how many
  calls it refused.

Failure modes, written down: the record is per process (the shared state may
be what is down), so N workers log N tracebacks for one outage. A resource that
fails less often than every KEYS_RETRY_AFTER_SECONDS is logged as separate
outages, each with its traceback: at most one per that many seconds per process.
A call answered without touching the failing part (a warm decision while the
database is down) counts towards the quiet time; if the part still fails after
it, a new outage begins, with its traceback.
"""

import logging
import threading
from dataclasses import dataclass
from time import monotonic  # the quiet time's clock (tests move it)

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse

try:
    from redis import RedisError
except ImportError:  # the "redis" extra is not installed: no Redis, so none of its errors either

    class RedisError(Exception):  # type: ignore[no-redef]
        pass

from .guard.answers import message_response

log = logging.getLogger("keys.outages")


@dataclass
class Part:
    """Something calls need, and this process's record of its current outage."""

    name: str
    message: str
    # Of the outage going on, if any: when it first and last failed, how many calls it refused.
    first: float = 0.0
    last: float = 0.0
    refused: int = 0


DATABASE = Part("the database", "The service is unavailable for a moment (its database cannot be reached).")
SHARED_STATE = Part(
    "the shared state (Redis)", "The service is unavailable for a moment (its shared state cannot be reached)."
)
ERRORS = (DatabaseError, RedisError)

_open: dict[str, Part] = {}  # the parts failing now, by name; empty while nothing fails
_lock = threading.Lock()


def part_of(exc: BaseException) -> Part:
    return DATABASE if isinstance(exc, DatabaseError) else SHARED_STATE


def unavailable(exc: BaseException, context: str) -> HttpResponse:
    """The 503 for a call refused because `exc` (one of ERRORS) says a part failed, logged
    as the outage's first failure (with the traceback) or as one line."""
    part = part_of(exc)
    with _lock:
        began = part.name not in _open
        part.last = monotonic()
        if began:
            part.first, part.refused = part.last, 0
            _open[part.name] = part
        part.refused += 1
    if began:
        log.error(
            "%s: %s cannot be reached; calls are answered 503 until it is back",
            context,
            part.name,
            exc_info=exc,
        )
    else:
        log.warning("%s: 503, %s still cannot be reached (%s)", context, part.name, exc.__class__.__name__)
    return answer(part)


def answer(part: Part) -> HttpResponse:
    """503: the caller should retry, and is told when."""
    response = message_response(part.message, 503)
    response["Retry-After"] = str(settings.KEYS_RETRY_AFTER_SECONDS)
    return response


def settle() -> None:
    """A call was answered: end every outage quiet for KEYS_RETRY_AFTER_SECONDS."""
    if not _open:
        return
    now = monotonic()
    quiet = settings.KEYS_RETRY_AFTER_SECONDS
    with _lock:
        ended = [part for part in _open.values() if now - part.last >= quiet]
        for part in ended:
            del _open[part.name]
    for part in ended:
        log.warning(
            "%s is back: no failure for %s s; the outage lasted %.1f s and %s calls were answered 503",
            part.name,
            quiet,
            part.last - part.first,
            part.refused,
        )


def clear() -> None:
    """Forget every outage (tests)."""
    with _lock:
        _open.clear()
