"""Counting every call per key, API type and day, and "last used", without a database
write in any call.

The guard calls `count()` for each answered call and each refusal of a known key
(403 not allowed, 401 inactive or expired). Counts add up in this process's memory
(a dict increment under a lock, about a microsecond) and a thread of the process
adds them to `KeyUsage` rows every KEYS_USAGE_FLUSH_SECONDS (default 5), in one
transaction, with `INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`, so
any number of workers and hosts add to the same rows without reading them.

What a crash can lose: the counts of the last flush interval of the process that
died (at most KEYS_USAGE_FLUSH_SECONDS of its calls). A graceful stop (gunicorn's
TERM, Ctrl-C) flushes at exit. A flush the database refuses keeps its counts in
memory for the next one, so an outage delays counts instead of losing them.
Calls to an API type that does not exist, and refusals of unknown keys, have no
key and type to count under; the `keys.security` log and the refusal counters
cover those.

"Last used" of keys and grants (keys/services.py api_key_touch decides when a
call's moment is worth writing) waits here too and is written by the same
flush: a call never waits for that write, which would block up to SQLite's busy
timeout while another process holds the write lock.
"""

import atexit
import logging
import os
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.signals import setting_changed
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.dispatch import receiver
from django.utils import timezone

from .models import ApiKey, ApiType, KeyUsage

log = logging.getLogger("keys.security")

COUNTS = KeyUsage.COUNTS


def column_for(status: int) -> str:
    """Which count an answered call adds to."""
    if status >= 500:
        return "server_errors"
    if status >= 400:
        return "client_errors"
    return "succeeded"


class _Today:
    """The site's date, recomputed only when a day ends (timezone.localdate costs
    microseconds per call; the guard needs it for every call)."""

    def __init__(self) -> None:
        self.day: date | None = None
        self.since = self.until = 0.0

    def __call__(self) -> date:
        now = time.time()
        # Recomputed too when the clock went back (an NTP step, a test's time machine): a day
        # remembered from a later moment would count calls on the wrong day.
        if not self.since <= now < self.until:
            self.since = now
            local = timezone.localtime()
            self.day = local.date()
            midnight = timezone.make_aware(datetime.combine(self.day + timedelta(days=1), datetime.min.time()))
            self.until = min(midnight.timestamp(), now + 3600)  # hourly too: a time zone change is picked up
        return self.day


today = _Today()


@receiver(setting_changed)
def _new_time_zone(*, setting: str, **kwargs) -> None:
    if setting == "TIME_ZONE":
        today.until = 0.0


class Tally:
    """One per process (made again after a fork): counts in memory and the thread that stores them."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.touched: dict[tuple[str, int], datetime] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="keys-usage-flusher", daemon=True)
        self.thread.start()
        atexit.register(self.flush)

    def add(self, key_id: int, api_type_id: int, column: str) -> None:
        with self.lock:
            self.counts[(key_id, api_type_id, today(), column)] += 1

    def touch(self, kind: str, pk: int, moment: datetime) -> None:
        with self.lock:
            self.touched[(kind, pk)] = moment

    def _run(self) -> None:
        while not self.stopping.wait(settings.KEYS_USAGE_FLUSH_SECONDS):
            self.flush()
        connection.close()  # this thread's own connection

    def flush(self) -> int:
        """Store the counts and "last used" moments so far; returns how many (key, type, day)
        rows were written."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
            touched, self.touched = self.touched, {}
        stored = 0
        try:
            if touched:
                store_touched(touched)
            if counts:
                stored = store(counts)
        except Exception as exc:  # the database is down: keep what waits for the next flush
            log.error("usage counts: not stored (%s); kept for the next try", exc.__class__.__name__)
            with self.lock:
                self.counts.update(counts)
                self.touched = touched | self.touched
        finally:
            if threading.current_thread() is self.thread:
                connection.close_if_unusable_or_obsolete()
        return stored

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        self.flush()


def store_touched(touched: dict[tuple[str, int], datetime]) -> None:
    """Write "last used" moments; a key or grant removed meanwhile matches no row."""
    from .models import ApiKeyGrant

    models = {"key": ApiKey, "grant": ApiKeyGrant}
    for (kind, pk), moment in touched.items():
        models[kind].objects.filter(pk=pk).update(last_used_at=moment)


def _rows(counts: Counter) -> dict[tuple[int, int, date], list[int]]:
    rows: dict[tuple[int, int, date], list[int]] = {}
    for (key_id, api_type_id, day, column), n in counts.items():
        rows.setdefault((key_id, api_type_id, day), [0] * len(COUNTS))[COUNTS.index(column)] += n
    return rows


def _upsert_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(KeyUsage._meta.db_table)
    columns = ["key_id", "api_type_id", "day", *COUNTS]
    adds = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in COUNTS)
    return (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)})"
        f" VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT (key_id, api_type_id, day) DO UPDATE SET {adds}"
    )


def store(counts: Counter) -> int:
    """Add `counts` to the stored rows in one transaction; returns how many rows.
    Counts of a key or type removed meanwhile are dropped (their rows went with them)."""
    rows = _existing(_rows(counts))
    try:
        _write(rows)
    except IntegrityError:  # removed between the check and the commit
        rows = _existing(rows)
        _write(rows)
    return len(rows)


def _existing(rows: dict[tuple[int, int, date], list[int]]) -> dict[tuple[int, int, date], list[int]]:
    keys = set(ApiKey.objects.filter(pk__in={k for k, _, _ in rows}).values_list("pk", flat=True))
    types = set(ApiType.objects.filter(pk__in={t for _, t, _ in rows}).values_list("pk", flat=True))
    return {slot: n for slot, n in rows.items() if slot[0] in keys and slot[1] in types}


def _write(rows: dict[tuple[int, int, date], list[int]]) -> None:
    day_value = connection.ops.adapt_datefield_value
    params = [[key_id, type_id, day_value(day), *n] for (key_id, type_id, day), n in rows.items()]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(), params)


_tally: Tally | None = None
_tally_lock = threading.Lock()


def tally() -> Tally:
    global _tally
    current = _tally
    if current is None or current.pid != os.getpid():  # made again in each forked worker
        with _tally_lock:
            if _tally is None or _tally.pid != os.getpid():
                _tally = Tally()
            current = _tally
    return current


def count(key_id: int | None, api_type_id: int | None, column: str) -> None:
    """Count one call (nothing for a call without a known key and type)."""
    if key_id is not None and api_type_id is not None:
        tally().add(key_id, api_type_id, column)


# The calls the guard let through, whatever the view answered: what a key's quota counts.
ADMITTED = ("succeeded", "client_errors", "server_errors")


def admitted(key_id: int, first: date, last: date) -> int:
    """How many calls of the key `key_id` were let through on the days `first` to `last`:
    the stored counts and this process's not yet stored (other processes' last
    KEYS_USAGE_FLUSH_SECONDS are not known here). keys/quotas.py seeds a quota with it."""
    total = F(ADMITTED[0]) + F(ADMITTED[1]) + F(ADMITTED[2])
    stored = KeyUsage.objects.filter(key_id=key_id, day__range=(first, last)).aggregate(n=Sum(total))["n"] or 0
    pending = 0
    if _tally is not None and _tally.pid == os.getpid():
        with _tally.lock:
            pending = sum(
                n
                for (key, _, day, column), n in _tally.counts.items()
                if key == key_id and column in ADMITTED and first <= day <= last
            )
    return int(stored) + pending


def touch(kind: str, pk: int, moment: datetime) -> None:
    """Remember that a key ("key") or grant ("grant") was used at `moment`, for the next flush."""
    tally().touch(kind, pk, moment)


def flush() -> int:
    """Store this process's counts now (tests; a page that must show them at once)."""
    if _tally is not None and _tally.pid == os.getpid():
        return _tally.flush()
    return 0


def discard() -> None:
    """Forget this process's unstored counts (tests)."""
    if _tally is not None and _tally.pid == os.getpid():
        with _tally.lock:
            _tally.counts.clear()
            _tally.touched.clear()


def stop() -> None:
    global _tally
    if _tally is not None and _tally.pid == os.getpid():
        _tally.stop()
        _tally = None
