"""Deleting old API documents: the one owner of "delete documents from before X", called by
`manage.py purge_api_logs` and by the task worker's retention schedule (KEYS_LOG_RETENTION_DAYS).

How it deletes. On PostgreSQL, whose documents are in daily partitions (keys/partitions.py),
a purge of every key first drops the partitions wholly before its cutoff that hold no queued
or running document: a partition of millions of documents goes in one short transaction (its
counts, chunks and claims with it). What is left before the cutoff, and every purge of one
key, on SQLite too, is deleted in batches: through `created_at`'s index, in windows of (created_at, id) holding at most
`batch` documents each: a probe walks the index `batch` entries from the window's start to find
its end, then one plain `DELETE` of the window's finished documents (`RETURNING` the ids of the
asynchronous ones), then one `DELETE` of those documents' answer chunks. No row is read into
Python and no ORM collector runs (Django's loads every row, bodies included, to cascade to the
chunks: that was the 3,150 rows/s). Each window is its own transaction, so a writer waits for
one batch at most (on SQLite, the write lock), an interrupt loses one batch's work at most,
and running the purge again continues where it stopped. Each row is visited once: the windows
move forward through the index, never over entries already deleted, and kept rows (queued
or running documents, another key's) are stepped over, not read again. Nothing assumes ids
and times rise together (bulk-loaded or reserved documents need not).

What is kept. A document still queued, validating or running (an asynchronous call whose
caller will ask for its result) is never deleted, whatever its age; it goes in a later purge
once finished. Deletes are plain `DELETE` statements, so database triggers on the documents
table (kept counts) fire for every row.

Failure modes. A batch that fails (the database is down, a deadlock) rolls back whole and
raises; what earlier batches deleted stays deleted, and the next run (or the next round of the
schedule) starts again from the oldest document left. Several task workers: on PostgreSQL each
batch takes a transaction-level advisory lock first, and a scheduled round that finds it taken
ends (another worker is purging), while the command waits for it; on SQLite the database's one
write lock does the same. Django's `post_delete` signals are not sent for documents (no
receiver of keys listens to them; a host's own receiver would not hear a purge).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import partitions
from .models import ApiDocument, ApiDocumentChunk, DocumentIdClaim
from .schedule import Schedule
from .selectors import start_of_day

log = logging.getLogger("keys.retention")

# Documents per batch (one transaction). On SQLite a batch holds the write lock that every
# logged call needs: 5,000 rows is ~30 ms of it here when times follow ids (as calls arrive),
# ~230 ms when they are scattered over the table (a bulk load; bench/purge_rate.py).
BATCH = 5000
FINISHED = (ApiDocument.Status.SUCCESSFUL, ApiDocument.Status.ERROR)
# The advisory lock's number on PostgreSQL (any constant no other code of the site uses).
LOCK_ID = 0x6B657973  # "keys"
# Chunk ids per DELETE ... IN (...): well inside SQLite's bound on parameters.
CHUNK_IDS = 500


@dataclass
class Purge:
    """What one purge did."""

    deleted: int = 0
    batches: int = 0
    stopped: bool = False  # told to stop (or, for a scheduled round, another worker was purging)


def finished_before(before: datetime, *, key_id: int | None = None):
    """The documents a purge deletes: finished, created before `before` (of one key, if given)."""
    logs = ApiDocument.objects.filter(created_at__lt=before, status__in=FINISHED)
    return logs.filter(key_id=key_id) if key_id is not None else logs


def documents_purge(
    *,
    before: datetime,
    key_id: int | None = None,
    batch: int = BATCH,
    wait_for_others: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] | None = None,
) -> Purge:
    """Delete the finished documents created before `before` (one key's, if `key_id`), in
    batches of at most `batch` rows, each its own transaction. `should_stop` is asked between
    batches; `progress` hears the running total after each. `wait_for_others=False` (the
    schedule) ends at once when another purge holds the PostgreSQL advisory lock."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    done = Purge()
    if key_id is None:
        for partition in partitions.droppable(before):
            if should_stop():
                done.stopped = True
                return done
            with transaction.atomic():
                if not _lock(wait_for_others):
                    done.stopped = True
                    return done
                dropped = partitions.drop(partition)
            if dropped is not None:
                done.deleted += dropped
                done.batches += 1
                if progress:
                    progress(done.deleted)
    oldest = _oldest(before, key_id)
    start = (oldest, 0) if oldest is not None else None
    while start is not None and not should_stop():
        # The probe reads before the batch's transaction: it holds no write lock while it walks
        # the index, and on SQLite a transaction that reads first (DEFERRED, as a host may leave
        # it) could not take the write lock once another connection had written since.
        end = _window_end(start, before, batch)
        with transaction.atomic():
            if not _lock(wait_for_others):
                done.stopped = True
                return done
            deleted = _delete_window(start, end, before, key_id)
        done.deleted += deleted  # counted once committed
        done.batches += 1
        if progress:
            progress(done.deleted)
        start = end
    done.stopped = start is not None
    return done


def _sql(text: str) -> str:
    return text.format(
        docs=connection.ops.quote_name(ApiDocument._meta.db_table),
        chunks=connection.ops.quote_name(ApiDocumentChunk._meta.db_table),
        claims=connection.ops.quote_name(DocumentIdClaim._meta.db_table),
    )


def _oldest(before: datetime, key_id: int | None) -> datetime | None:
    """Where the first window starts: the oldest document that may be deleted (one index probe)."""
    first = finished_before(before, key_id=key_id).order_by("created_at").values_list("created_at", flat=True)
    return first.first()


# A window's bounds: (created_at, id), ordered as the created_at index holds its entries.
Bound = tuple[datetime, int]


def _from(start: Bound) -> Q:
    """At or after `start` (given created_at >= start's time, which the index range says)."""
    return Q(created_at__gt=start[0]) | Q(id__gte=start[1])


def _window_end(start: Bound, before: datetime, batch: int) -> Bound | None:
    """The end (exclusive) of the window from `start` holding at most `batch` documents of any
    kind, or None when fewer are left before `before`. One walk of `batch` index entries;
    documents sharing one instant (a bulk load) are split by id, so no batch grows beyond it."""
    ahead = ApiDocument.objects.filter(_from(start), created_at__gte=start[0], created_at__lt=before)
    rows = ahead.order_by("created_at", "id").values_list("created_at", "id")[batch : batch + 1]
    return next(iter(rows), None)


def _delete_window(start: Bound, end: Bound | None, before: datetime, key_id: int | None) -> int:
    """One batch: the window's finished documents, then the answer chunks of its asynchronous
    ones (the foreign key is checked at commit, so the order within the transaction is free).
    Plain SQL: Django's collector would load every row, bodies and all, to find the chunks."""
    adapt = connection.ops.adapt_datetimefield_value  # the column's own format (SQLite: naive UTC text)
    where = "created_at >= %s AND (created_at > %s OR id >= %s) AND status IN (%s, %s)"
    params = [adapt(start[0]), adapt(start[0]), start[1], *FINISHED]
    if end is None:
        where += " AND created_at < %s"
        params.append(adapt(before))
    else:
        where += " AND created_at <= %s AND (created_at < %s OR id < %s)"
        params += [adapt(end[0]), adapt(end[0]), end[1]]
    if key_id is not None:
        where += " AND key_id = %s"
        params.append(key_id)
    delete = f"DELETE FROM {{docs}} WHERE {where} RETURNING id, is_async"
    if partitions.partitioned():
        # With their ids' claims (keys.models.DocumentIdClaim), in the same statement.
        delete = (
            f"WITH gone AS (DELETE FROM {{docs}} WHERE {where} RETURNING id, is_async, document_id),"
            " unclaimed AS (DELETE FROM {claims} WHERE document_id IN (SELECT document_id FROM gone))"
            " SELECT id, is_async FROM gone"
        )
    with connection.cursor() as cursor:
        cursor.execute(_sql(delete), params)
        rows = cursor.fetchall()
        chunked = [pk for pk, is_async in rows if is_async]
        for n in range(0, len(chunked), CHUNK_IDS):
            part = chunked[n : n + CHUNK_IDS]
            marks = ", ".join(["%s"] * len(part))
            cursor.execute(_sql(f"DELETE FROM {{chunks}} WHERE document_id IN ({marks})"), part)
    return len(rows)


def _lock(wait: bool) -> bool:
    """On PostgreSQL, the purge's advisory lock for this batch's transaction; True when held."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_ID])
        return bool(cursor.fetchone()[0])


# --- automatic retention (KEYS_LOG_RETENTION_DAYS), in each task worker -----------------


def retention_cutoff(*, now: datetime | None = None) -> datetime | None:
    """The moment before which documents go: the start of the day KEYS_LOG_RETENTION_DAYS days
    before today (site time zone), so today and that many whole days before it are kept; None
    when retention is off (the default: CHQ never deletes logs on its own)."""
    days = settings.KEYS_LOG_RETENTION_DAYS
    if days is None:
        return None
    today = timezone.localdate(now)
    return start_of_day(today - timedelta(days=days))


def purge_expired(*, should_stop: Callable[[], bool] = lambda: False) -> Purge:
    """One round of automatic retention: delete the finished documents older than the cutoff."""
    before = retention_cutoff()
    if before is None:
        return Purge()
    done = documents_purge(before=before, wait_for_others=False, should_stop=should_stop)
    if done.deleted:
        log.info("Log retention: deleted %d document(s) created before %s", done.deleted, before.isoformat())
    return done


class RetentionSchedule(Schedule):
    """purge_expired() every KEYS_LOG_RETENTION_CHECK_MINUTES while KEYS_LOG_RETENTION_DAYS is set."""

    name = "keys-retention"
    what = "Log retention"

    def minutes(self) -> float:
        if settings.KEYS_LOG_RETENTION_DAYS is None:
            return 0
        return settings.KEYS_LOG_RETENTION_CHECK_MINUTES

    def round(self, stopping: threading.Event) -> None:
        purge_expired(should_stop=stopping.is_set)
