"""The documents table in daily partitions on PostgreSQL: made ahead, dropped whole when old.

On PostgreSQL `keys_apidocument` is partitioned by RANGE (created_at), one partition a UTC
week (Monday to Monday; KEYS_LOG_PARTITION: "day", "week" or "month"), named by its first day
(`keys_apidocument_20261130`), made by migration 0021 from the table it finds: the
documents already there stay where they are, as one partition (`keys_apidocument_legacy`,
everything before the day after its newest document), so the migration moves no row. A
DEFAULT partition takes a document whose day has no partition (a bulk load of old
documents, a worker that made none for a week), so no write ever fails for want of one.
SQLite keeps one table; the model and every query are the same on both.

What partitioning changes, and who owns it:
- The primary key is (id, created_at) and document_id is unique per partition with
  created_at, since a unique index on a partitioned table must hold the partition key: a
  caller's own ApiDocumentId is kept unique by keys.models.DocumentIdClaim
  (keys/calllog/writer.py), and chunks reference their document without a database
  constraint (keys.models.ApiDocumentChunk).
- Partitions are made AHEAD_DAYS ahead: by migration 0021, by every task worker each
  hour (PartitionSchedule, keys/worker.py) and by `manage.py api_log_partitions`, which
  also makes them for past days before a bulk load (`--since`). Made as a table of their
  own and then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock on the documents,
  which no read or write waits for (CREATE TABLE ... PARTITION OF would take an exclusive
  one). Documents the DEFAULT partition took for that day move into it first.
- A purge (keys/retention.py) drops whole partitions older than its cutoff holding no
  queued or running document (`drop`), and deletes the rest in batches. Dropping a
  partition takes its documents out of the kept counts (keys/counts.py), deletes their
  chunks and claims, detaches it and drops it, in one transaction.

How it fails:
- Detaching needs an ACCESS EXCLUSIVE lock on the documents for a moment, which waits for
  every running statement on them (a long streamed export) and, while it waits, makes every
  new one wait behind it. So the drop waits at most LOCK_TIMEOUT for it and otherwise gives
  up (`drop` returns None, nothing changed): writers stall for LOCK_TIMEOUT at worst, and
  the partition goes in a later round. (DETACH ... CONCURRENTLY would not stall them, but it
  is refused while a DEFAULT partition exists and runs as two transactions, so the counts
  could not change in the same one.)
- A partition that cannot be made (the database is down, the lock not had within
  LOCK_TIMEOUT) is made by a later round; until then its day's documents go to DEFAULT,
  whose rows move when it is made (an exclusive lock on DEFAULT, which only writes of such
  rows wait for).
- An UPDATE of a document's created_at is refused (KEPT_TIME): it would move the row to
  another partition, which the count triggers would see twice.
- Writes that bypass the triggers (see keys/counts.py) and DDL by hand on the partitions
  are the operator's to keep consistent; `api_log_partitions` lists what there is.
"""

import contextlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

from . import counts
from .models import ApiDocument, ApiDocumentChunk, DocumentIdClaim
from .schedule import Schedule

log = logging.getLogger("keys.partitions")

AHEAD_DAYS = 7
SPANS = ("day", "week", "month")
# The advisory lock that makes the partitions one process at a time (any constant no other code uses).
MAKING = 0x6B657970  # "keyp"
# How long a partition's drop or attach waits for its lock on the documents table.
LOCK_TIMEOUT = "200ms"
PARENT = ApiDocument._meta.db_table
DEFAULT = f"{PARENT}_default"
LEGACY = f"{PARENT}_legacy"
SEQUENCE = f"{PARENT}_id_seq"
FINISHED = (ApiDocument.Status.SUCCESSFUL, ApiDocument.Status.ERROR)
# A document's created_at never changes: it names its partition, and an UPDATE that moved a row
# to another partition would be counted twice (the destination's INSERT row trigger and the
# UPDATE's statement trigger, keys/counts.py). Refused for the row, only when it would change.
KEPT_TIME = [
    "CREATE OR REPLACE FUNCTION keys_doc_created_at_kept() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " RAISE EXCEPTION 'an API document''s created_at cannot change: it names the document''s partition'"
    " USING ERRCODE = 'check_violation'; END $$",
    f"CREATE TRIGGER keys_doc_created_at_kept BEFORE UPDATE OF created_at ON {PARENT} FOR EACH ROW"
    " WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at) EXECUTE FUNCTION keys_doc_created_at_kept()",
]
_BOUND = re.compile(r"FOR VALUES FROM \((?P<start>[^)]*)\) TO \((?P<end>[^)]*)\)")


@dataclass(frozen=True)
class Partition:
    """One partition of the documents: [start, end) of created_at (None: no lower bound), or
    the DEFAULT partition (both None, `is_default`)."""

    name: str
    start: datetime | None
    end: datetime | None
    is_default: bool = False


def partitioned(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the documents table is partitioned here: on PostgreSQL, after migration 0021."""
    return connections[using].vendor == "postgresql"


def _moment(text: str) -> datetime | None:
    text = text.strip()
    if text.upper() == "MINVALUE":
        return None
    return datetime.fromisoformat(text.strip("'"))


def partitions(using: str = DEFAULT_DB_ALIAS) -> list[Partition]:
    """The documents' partitions, oldest first, DEFAULT last."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, is_default=True))
            continue
        match = _BOUND.match(bound)
        if match is None:  # not a partition this module made: say so rather than guess
            raise DatabaseError(f"{name}: unexpected partition bound {bound!r}")
        found.append(Partition(name, _moment(match["start"]), _moment(match["end"])))
    return sorted(found, key=lambda p: (p.is_default, p.end or datetime.max.replace(tzinfo=UTC)))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def span_of(day: date, span: str) -> tuple[date, date]:
    """The partition holding `day`: [first day, day after its last)."""
    if span == "day":
        return day, day + timedelta(days=1)
    if span == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    first = day.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def _gaps(start: datetime, end: datetime, taken: list[tuple[datetime | None, datetime]]):
    """The parts of [start, end) no range of `taken` covers (a span changed: the old partitions stay)."""
    at = start
    for low, high in sorted((r for r in taken if (r[0] is None or r[0] < end) and r[1] > start), key=_low):
        if low is not None and low > at:
            yield at, low
        at = max(at, high)
    if at < end:
        yield at, end


def _low(taken: tuple[datetime | None, datetime]) -> datetime:
    return taken[0] or datetime.min.replace(tzinfo=UTC)


def ensure(
    *, since: date | None = None, ahead: int = AHEAD_DAYS, now: datetime | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[str]:
    """Make the partitions (KEYS_LOG_PARTITION's spans) missing from the one holding `since`
    (default: today, UTC) through the one holding the day `ahead` days after today; returns the
    names made. What another partition covers already is skipped, so a changed span leaves the
    partitions made before and fills only what they do not hold."""
    if not partitioned(using):
        return []
    span = settings.KEYS_LOG_PARTITION
    today = (now or timezone.now()).astimezone(UTC).date()
    day, last = since or today, today + timedelta(days=ahead)
    taken = [(p.start, p.end) for p in partitions(using) if not p.is_default]
    made = []
    while day <= last:
        first, after = span_of(day, span)
        for start, end in list(_gaps(day_start(first), day_start(after), taken)):
            if (name := _make(start, end, using)) is not None:
                made.append(name)
            taken.append((start, end))
        day = after
    return made


def _make(start: datetime, end: datetime, using: str) -> str | None:
    """One partition: made as a table, given the documents of its span DEFAULT holds, attached.
    None when another process made it meanwhile (every task worker runs ensure() each hour)."""
    name = f"{PARENT}_{start:%Y%m%d}"
    span = "created_at >= %s AND created_at < %s"
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MAKING])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return None
        with _waiting_at_most(cursor, LOCK_TIMEOUT):
            cursor.execute(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            # Moved straight between the partitions, not through the documents table: its count
            # triggers fire for neither statement, and the documents stay counted as they were.
            cursor.execute(f"LOCK TABLE {DEFAULT} IN EXCLUSIVE MODE")
            cursor.execute(f"INSERT INTO {name} SELECT * FROM {DEFAULT} WHERE {span}", [start, end])
            cursor.execute(f"DELETE FROM {DEFAULT} WHERE {span}", [start, end])
            bound = "FOR VALUES FROM (%s) TO (%s)"
            cursor.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {bound}", [start, end])
    log.info("Made the documents' partition %s", name)
    return name


@contextlib.contextmanager
def _waiting_at_most(cursor, timeout: str):
    """lock_timeout for the statements inside, then back to what it was. SET LOCAL alone would
    outlast this savepoint into the caller's transaction (a test's, a migration's), whose own
    statements then gave up on locks after 200 ms. A failure inside rolls the setting back with
    the savepoint (or the transaction) it failed in."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    (before,) = cursor.fetchone()
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
    yield
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])


def drop(partition: Partition) -> int | None:
    """Drop one partition, all of whose documents are finished: take them out of the counts,
    delete their chunks and their ids' claims, detach it and drop it, in one transaction (the
    caller's, which the purge's advisory lock guards). Returns how many documents went, or
    None when it was kept: a document in it is queued or running, or the documents table's
    lock was not had within LOCK_TIMEOUT (nothing changed; a later round tries again)."""
    chunks, claims = ApiDocumentChunk._meta.db_table, DocumentIdClaim._meta.db_table
    try:
        with (
            transaction.atomic(),
            connections[DEFAULT_DB_ALIAS].cursor() as cursor,
            _waiting_at_most(cursor, LOCK_TIMEOUT),
        ):
            # Its documents stay as they are while counted: a removed key's SET_NULL, which would
            # move counts, waits (or fails) rather than change them between the count and the drop.
            cursor.execute(f"LOCK TABLE {partition.name} IN SHARE MODE")
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {partition.name} WHERE status NOT IN (%s, %s))", list(FINISHED)
            )
            if cursor.fetchone()[0]:
                return None
            gone = counts.forget_partition(cursor, partition.name)
            cursor.execute(
                f"DELETE FROM {chunks} WHERE document_id IN (SELECT id FROM {partition.name} WHERE is_async)"
            )
            if partition.start is None:
                cursor.execute(f"DELETE FROM {claims} WHERE created_at < %s", [partition.end])
            else:
                cursor.execute(
                    f"DELETE FROM {claims} WHERE created_at >= %s AND created_at < %s", [partition.start, partition.end]
                )
            cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {partition.name}")
            cursor.execute(f"DROP TABLE {partition.name}")
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available: try later
            raise
        log.warning(
            "Documents' partition %s kept for now: its lock was not had within %s", partition.name, LOCK_TIMEOUT
        )
        return None
    log.info("Dropped the documents' partition %s (%d documents)", partition.name, gone)
    return gone


def droppable(before: datetime) -> list[Partition]:
    """The partitions wholly before `before`, oldest first."""
    if not partitioned():
        return []
    return [p for p in partitions() if not p.is_default and p.end <= before]


class PartitionSchedule(Schedule):
    """ensure() every hour in each task worker (on PostgreSQL): partitions AHEAD_DAYS ahead."""

    name = "keys-partitions"
    what = "Documents' partitions"

    def minutes(self) -> float:
        return 60 if partitioned() else 0

    def round(self, stopping: threading.Event) -> None:
        ensure()


# --- migration 0021: the table as it is, partitioned ------------------------------------------


def _names(cursor, sql: str, params) -> list:
    cursor.execute(sql, params)
    return cursor.fetchall()


def partition_table(schema_editor) -> None:
    """Make keys_apidocument a table partitioned by created_at, its documents kept in place."""
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(created_at), MAX(id) FROM {PARENT}")
        newest, top_id = cursor.fetchone()
        sequence = _names(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])[0][0]
        cursor.execute(f"SELECT last_value FROM {sequence}")
        next_id = max(cursor.fetchone()[0], top_id or 0) + 1
        constraints = _names(
            cursor,
            "SELECT conname, contype FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
            [PARENT],
        )
        keyed = {name for name, _ in constraints}
        references = _names(
            cursor,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            [PARENT],
        )
        indexes = [
            (name, definition)
            for name, definition in _names(
                cursor,
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
                [PARENT],
            )
            if name not in keyed
        ]
    counts.uninstall(schema_editor)
    for n, (name, _) in enumerate(indexes):
        run(f"ALTER INDEX {name} RENAME TO {PARENT}_legacy_{n}")
    for n, (name, kind) in enumerate(constraints):
        if kind == "p":  # the partitioned table's (id, created_at) takes its place
            run(f"ALTER TABLE {PARENT} DROP CONSTRAINT {name}")
        else:  # document_id's own unique index: the legacy documents keep it
            run(f"ALTER TABLE {PARENT} RENAME CONSTRAINT {name} TO {PARENT}_legacy_key_{n}")
    run(f"ALTER TABLE {PARENT} RENAME TO {LEGACY}")
    run(f"ALTER TABLE {LEGACY} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    run(
        f"CREATE TABLE {PARENT} (LIKE {LEGACY} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (created_at)"
    )
    run(f"CREATE SEQUENCE {SEQUENCE} START {next_id} OWNED BY {PARENT}.id")
    run(f"ALTER TABLE {PARENT} ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
    run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY (id, created_at)")
    run(f"CREATE UNIQUE INDEX keys_doc_document_id_uniq ON {PARENT} (document_id, created_at)")
    for _, definition in indexes:  # Django's indexes, by their names, on the partitioned table
        run(definition)
    for name, definition in references:  # to keys and types (attached to the legacy's own on ATTACH)
        run(f"ALTER TABLE {PARENT} ADD CONSTRAINT {name} {definition}")
    if newest is None:
        run(f"DROP TABLE {LEGACY}")
        since = None
    else:
        # Everything up to the end of the newest document's day: the daily partitions follow.
        since = newest.astimezone(UTC).date() + timedelta(days=1)
        run(f"ALTER TABLE {PARENT} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO (%s)", [day_start(since)])
    run(f"CREATE TABLE {DEFAULT} PARTITION OF {PARENT} DEFAULT")
    counts.install(schema_editor, backfill=False)
    for statement in KEPT_TIME:
        run(statement)
    ensure(since=since, using=schema_editor.connection.alias)


def unpartition_table(schema_editor, model) -> None:
    """Back to one table (migrating below 0021): `model` is the documents' model of 0020."""
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    run(f"ALTER TABLE {PARENT} RENAME TO {PARENT}_partitioned")
    for name, _ in _index_names(schema_editor):  # names the table made by create_model takes
        run(f"ALTER INDEX {name} RENAME TO {name[:50]}_p")
    run(f"ALTER SEQUENCE {SEQUENCE} RENAME TO {PARENT}_partitioned_seq")
    schema_editor.create_model(model)
    columns = ", ".join(schema_editor.quote_name(f.column) for f in model._meta.concrete_fields)
    run(f"INSERT INTO {PARENT} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {PARENT}_partitioned")
    top = f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {PARENT})"
    run(f"SELECT setval(pg_get_serial_sequence('{PARENT}', 'id'), {top}, false)")
    run(f"DROP TABLE {PARENT}_partitioned CASCADE")
    run("DROP FUNCTION IF EXISTS keys_doc_created_at_kept()")
    counts.install(schema_editor, backfill=False)


def _index_names(schema_editor) -> list[tuple[str, str]]:
    with schema_editor.connection.cursor() as cursor:
        return _names(
            cursor,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [f"{PARENT}_partitioned"],
        )
