"""Storing logged calls: every one exactly once, and cheaply.

A logged call's row is written after its answer is made. Two writers:

- "direct": the request's own thread INSERTs the row (one transaction each).
- "batched" (the default): the row is appended to this process's journal file
  (one `write()`, no fsync: it survives the process dying, as SQLite's WAL with
  synchronous=NORMAL does), queued, and a writer thread in the same process
  INSERTs the queued rows together, one transaction per batch, at least every
  KEYS_CALL_LOG_FLUSH_MS milliseconds. A batch's journal file is removed only
  after its transaction commits. Journal files of processes that died
  (nobody holds their lock) are stored by the next process that starts
  writing, by `manage.py replay_api_call_spool`, and reported by /healthz.

Exactly once: `document_id` is unique and every INSERT skips a document
already stored, so storing a journal twice (a crash between commit and
removal) stores nothing twice. A row the database refuses for its key or type
(removed while the call ran) is stored without that reference, keeping its
snapshots; a row the database refuses outright goes to the spool
(keys/spool.py) and the failure is logged.
"""

import atexit
import fcntl
import functools
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..models import ApiDocument
from . import spool

log = logging.getLogger("keys.security")

# Fields the database driver takes as they are; the others go through their model field.
_PLAIN = (str, int, float, bool, type(None))
_FIELDS = [f for f in ApiDocument._meta.concrete_fields if not f.primary_key]


@functools.cache
def _insert_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _FIELDS)
    marks = ", ".join(["%s"] * len(_FIELDS))
    unique = quote(ApiDocument._meta.get_field("document_id").column)
    # A document already stored (a journal replayed twice) is skipped, never stored twice.
    table = quote(ApiDocument._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({unique}) DO NOTHING"


_DATES = {f.attname for f in _FIELDS if f.get_internal_type() == "DateTimeField"}


def _converter(field: models.Field) -> Callable[[Any, BaseDatabaseWrapper], Any]:
    """How a row's value for `field` becomes the database's, with the backend's own adapters.
    Not through the model field's get_db_prep_save: its layers cost more than the INSERT
    (50 µs a row, bench/profile_call.py). Rows come from api_call_record, the journal
    (dates as ISO text) and the spool."""
    if field.attname in _DATES:
        return lambda v, db: db.ops.adapt_datetimefield_value(datetime.fromisoformat(v) if isinstance(v, str) else v)
    if field.attname == "document_id":
        return lambda v, db: uuid.UUID(str(v)) if db.features.has_native_uuid_field else uuid.UUID(str(v)).hex
    if field.attname == "client_address":
        return lambda v, db: db.ops.adapt_ipaddressfield_value(v)
    return lambda v, db: v if isinstance(v, _PLAIN) else field.get_db_prep_save(v, db)


_CONVERTERS = [(f.attname, f, _converter(f)) for f in _FIELDS]


def _params(row: dict, db: BaseDatabaseWrapper) -> list:
    created = row.get("created_at") or timezone.now()
    # A row journaled or spooled before a field existed gets the field's default.
    defaults = {"created_at": created, "modified_at": row.get("modified_at") or created}
    params = []
    moments: dict[Any, Any] = {}  # a call's created, modified and ended moments are one: converted once
    for name, field, convert in _CONVERTERS:
        value = row[name] if name in row else defaults[name] if name in defaults else field.get_default()
        if name in _DATES and value is not None:
            if value not in moments:
                moments[value] = convert(value, db)
            params.append(moments[value])
        else:
            params.append(convert(value, db))
    return params


def insert(rows: list[dict]) -> None:
    """INSERT rows in the current transaction: one prepared statement, values made
    ready by their model fields (the ORM's create() spent more building the query
    than the database spent writing the row; bench/profile_call.py)."""
    with connection.cursor() as cursor:
        db = connections[DEFAULT_DB_ALIAS]  # this thread's connection itself, not the proxy
        cursor.executemany(_insert_sql(connection.vendor), [_params(row, db) for row in rows])


def store_one(row: dict) -> None:
    """Store one row now; a row whose key or type is gone is kept without the reference.
    Raises when the database refuses it anyway."""
    try:
        with transaction.atomic():
            insert([row])
    except IntegrityError:
        with transaction.atomic():
            insert([row | {"key_id": None, "api_type_id": None}])


def store_or_spool(row: dict) -> bool:
    try:
        store_one(row)
        return True
    except Exception as exc:  # the database refused it: keep it durably, say so, store it later
        spool.keep(row)
        log.error(
            "call log %s not stored (%s); kept in the spool to be stored later",
            row["document_id"],
            exc.__class__.__name__,
        )
        return False


def submit(row: dict) -> None:
    """Store a logged call's row, by the configured writer. Never raises."""
    if settings.KEYS_CALL_LOG_WRITER == "direct":
        if store_or_spool(row):
            spool.replay_if_due()
        return
    writer().append(row)


# --- the batched writer ----------------------------------------------------------------


# One encoder for every line (json.dumps with arguments builds a new one per call); moments as text.
_JOURNAL_ENCODER = json.JSONEncoder(default=str, ensure_ascii=True)


def journal_dir() -> Path:
    return Path(settings.KEYS_SHARED_STATE_DIR) / "journal"


class BatchedWriter:
    """One per process (made again after a fork): journal, queue and writer thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.state_dir = settings.KEYS_SHARED_STATE_DIR
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.pending: list[dict] = []
        self.sequence = 0
        self.folder = journal_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd, self.path = self._open()
        self.thread = threading.Thread(target=self._run, name="keys-call-log-writer", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _open(self) -> tuple[int, Path]:
        self.sequence += 1
        path = self.folder / f"{self.pid}.{self.sequence}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while this process may still store it
        return fd, path

    def append(self, row: dict) -> None:
        line = (_JOURNAL_ENCODER.encode(row) + "\n").encode("ascii")
        with self.lock:
            os.write(self.fd, line)
            self.pending.append(row)
        if len(self.pending) >= settings.KEYS_CALL_LOG_BATCH:
            self.wake.set()

    def _run(self) -> None:
        recover()  # journals that processes before this one left behind
        interval = settings.KEYS_CALL_LOG_FLUSH_MS / 1000
        while not self.stopping:
            self.wake.wait(interval)
            self.wake.clear()
            self.flush()
        connection.close()  # this thread's own connection

    def stop(self) -> None:
        """Store what is queued and end the writer thread (tests; a server reloading its code)."""
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=30)
        self.flush()

    def flush(self) -> None:
        """Store what is queued; its journal file goes once the transaction commits."""
        with self.lock:
            if not self.pending:
                return
            batch, fd, path = self.pending, self.fd, self.path
            self.pending = []
            self.fd, self.path = self._open()
        try:
            self._store(batch)
        except Exception as exc:  # database down: the rows wait in their journal, and in the spool
            log.error("call-log writer: %s rows not stored (%s); spooled", len(batch), exc.__class__.__name__)
            for row in batch:
                spool.keep(row)
        path.unlink(missing_ok=True)
        os.close(fd)
        connection.close_if_unusable_or_obsolete()
        spool.replay_if_due()

    def _store(self, batch: list[dict]) -> None:
        try:
            with transaction.atomic():
                insert(batch)
        except IntegrityError:  # one row's key or type is gone: store row by row
            for row in batch:
                store_one(row)

    def close(self) -> None:
        """At exit (a graceful worker stop): store what is queued."""
        try:
            self.flush()
        except Exception:
            log.exception("call-log writer: could not store the queue at exit; it stays in the journal")


_writer: BatchedWriter | None = None
_writer_lock = threading.Lock()


def writer() -> BatchedWriter:
    global _writer
    current = _writer
    # Made again after a fork (gunicorn's workers) or when the settings name another folder (tests).
    if current is None or current.pid != os.getpid() or current.state_dir is not settings.KEYS_SHARED_STATE_DIR:
        with _writer_lock:
            _writer = current = BatchedWriter()
    return current


def stop() -> None:
    """End this process's writer, if it has one, after storing its queue."""
    global _writer
    if _writer is not None and _writer.pid == os.getpid():
        _writer.stop()
        _writer = None


def flush() -> None:
    """Store this process's queued rows now (tests, shutdown, a status call that must see them)."""
    if _writer is not None and _writer.pid == os.getpid():
        _writer.flush()


def orphans() -> list[Path]:
    """Journal files no living process holds."""
    folder = journal_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            found.append(path)
        except BlockingIOError:
            pass  # its process is alive and will store it
        finally:
            os.close(fd)
    return found


def recover() -> int:
    """Store the rows of journals whose process died; returns how many rows."""
    stored = 0
    for path in orphans():
        rows = []
        for line in path.read_bytes().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by the crash: its call was never answered
        for row in rows:
            if store_or_spool(row):
                stored += 1
        path.unlink(missing_ok=True)
    if stored:
        log.warning("call-log writer: stored %s rows from journals of processes that stopped", stored)
    return stored


def pending() -> int:
    """Rows in journal files (this process's and others') not yet stored."""
    folder = journal_dir()
    if not folder.is_dir():
        return 0
    return sum(len(p.read_bytes().splitlines()) for p in folder.glob("*.jsonl"))
