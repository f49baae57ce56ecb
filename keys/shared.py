"""Counters every worker process sees, without Redis.

The refused-key throttle and the refusal counts must be shared by all of a
server's worker processes: counted per process, four workers let four times
as many guesses through. Django's local-memory cache is per process, and its
file and database caches cannot increment atomically. So, on the embedded
default, counters live in a small SQLite file of their own (not the main
database, whose write lock belongs to keys and call logs), incremented with
one atomic UPSERT. With a shared cache configured (Redis), the cache's own
atomic `incr` is used instead, so several hosts share the counts too.

Losing these counts in a power cut only resets throttling, hence
`synchronous=OFF`.
"""

import sqlite3
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

from .freshness import FileMarker

_local = threading.local()

_SCHEMA = "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL)"
_INCR = (
    "INSERT INTO counters (name, value, expires) VALUES (?, 1, ?)"
    " ON CONFLICT (name) DO UPDATE SET"
    " value = CASE WHEN expires IS NOT NULL AND expires <= ? THEN 1 ELSE value + 1 END,"
    " expires = CASE WHEN expires IS NOT NULL AND expires <= ? THEN excluded.expires ELSE expires END"
    " RETURNING value"
)


def uses_cache() -> bool:
    return settings.KEYS_SHARED_COUNTERS == "cache"


def path() -> Path:
    return Path(settings.KEYS_SHARED_STATE_DIR) / "counters.sqlite3"


def _connection() -> sqlite3.Connection:
    folder = settings.KEYS_SHARED_STATE_DIR
    conn = getattr(_local, "conn", None)
    if conn is None or _local.folder is not folder:  # identity: no path work per call
        path().parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path()), timeout=5, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(_SCHEMA)
        _local.conn, _local.folder = conn, folder
    return conn


def incr(names: list[tuple[str, int | None]]) -> list[int]:
    """Add one to each (name, window seconds or None for ever) counter in one
    transaction; a counter whose window has passed starts again at 1."""
    now = time.time()
    if uses_cache():
        return [_cache_incr(name, window) for name, window in names]
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        values = [
            conn.execute(_INCR, (name, now + window if window else None, now, now)).fetchone()[0]
            for name, window in names
        ]
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return values


def _cache_incr(name: str, window: int | None) -> int:
    if cache.add(name, 1, timeout=window):
        return 1
    try:
        return cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout=window)
        return 1


def set_until(name: str, value: float, expires: float) -> None:
    """Set a counter that disappears at the time `expires` (seconds since the epoch)."""
    if uses_cache():
        cache.set(name, value, timeout=max(1, int(expires - time.time())))
        return
    conn = _connection()
    conn.execute("INSERT OR REPLACE INTO counters (name, value, expires) VALUES (?, ?, ?)", (name, value, expires))
    # Expired rows are dropped now and then, so the file stays as small as the live counts.
    conn.execute("DELETE FROM counters WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
    if name.startswith(MARKED_PREFIX):
        _marks.advance()


# Every call asks whether its client is blocked, and blocks are rare: each process keeps
# the live blocks in memory and reloads them only when the block marker moves.
MARKED_PREFIX = "keys:throttle:block:"
_marks = FileMarker("block-marker")
_known: dict[str, object] = {"marker": None, "blocks": {}}


def marked(name: str) -> float | None:
    """The value of a live `keys:throttle:block:...` counter, or None; no query while nothing changed."""
    if uses_cache():
        return cache.get(name)
    marker = _marks.current()
    if marker != _known["marker"] or _known.get("folder") is not settings.KEYS_SHARED_STATE_DIR:
        rows = _connection().execute(
            "SELECT name, value FROM counters WHERE name >= ? AND name < ? AND expires > ?",
            (MARKED_PREFIX, MARKED_PREFIX + "\uffff", time.time()),
        )
        _known.update(marker=marker, blocks=dict(rows.fetchall()), folder=settings.KEYS_SHARED_STATE_DIR)
    value = _known["blocks"].get(name)
    return value if value is not None and value > time.time() else None


def get(names: list[str]) -> dict[str, int]:
    """The live counters among `names`."""
    if uses_cache():
        return cache.get_many(names)
    placeholders = ",".join("?" * len(names))
    rows = _connection().execute(
        f"SELECT name, value FROM counters WHERE name IN ({placeholders}) AND (expires IS NULL OR expires > ?)",
        (*names, time.time()),
    )
    return dict(rows.fetchall())


def clear() -> None:
    """Forget every counter (tests; an operator after a false alarm)."""
    if uses_cache():
        cache.clear()
        return
    _connection().execute("DELETE FROM counters")
    _marks.advance()
