"""Storing logged calls' documents: committed before the answer leaves, each exactly once.

A logged call's document is written by the request's own thread, in one
statement, and committed before the last byte of its answer is sent, so
status, getdata, API Document Export, the log viewer and admin see it from
that moment, from any process. The commit is cheap because the databases
offer it: SQLite runs in WAL with `synchronous=NORMAL` (chq/settings.py: a
commit writes the WAL without an fsync), and on PostgreSQL the row's
transaction runs with `SET LOCAL synchronous_commit = off` (visible at once;
a server crash may lose the last few hundred milliseconds of such rows, the
same promise SQLite's setting makes, kept by the database itself).

An `ApiDocumentId` is taken once. A caller's own id is reserved before its
handler runs (`reserve`: the document inserted InProcess, the unique index
refusing a second one), so a reused or raced id is answered 409 and its
handler never runs. The finished row is then written with an upsert that
completes only a sync document still InProcess (the reserved row: same id,
same created_at, which the call carries from its reservation); a document
without a caller's id has a fresh one and is inserted outright. Either way
one statement, one round trip.

On PostgreSQL the documents table is partitioned by created_at
(keys/partitions.py), and a unique index there must hold created_at: the
upsert's conflict target is (document_id, created_at), and a reservation
claims the id in keys.models.DocumentIdClaim in the same statement, which
claims nothing (and inserts no document) while any committed document has the
id; the claim's primary key makes a racing reservation of the id wait for the
first one's commit and then claim nothing. No claim, no document: Taken.

A row the database refuses for its key or type (removed while the call ran)
is stored without that reference, keeping its snapshots; a row the database
refuses outright goes to the spool (keys/calllog/spool.py), the failure is
logged, and the spool stores it later: the call was answered, so its
document must not be lost.
"""

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..models import ApiDocument, DocumentIdClaim
from . import spool

log = logging.getLogger("keys.security")

# Fields the database driver takes as they are; the others go through their model field.
_PLAIN = (str, int, float, bool, type(None))
_FIELDS = [f for f in ApiDocument._meta.concrete_fields if not f.primary_key]
_DATES = {f.attname for f in _FIELDS if f.get_internal_type() == "DateTimeField"}
_STAMPS = {"created_at", "modified_at"}
# Columns whose values (str, int, float, bool, None) every driver takes as they are.
_DRIVER_TYPES = {
    "CharField",
    "TextField",
    "BooleanField",
    "FloatField",
    "IntegerField",
    "PositiveSmallIntegerField",
    "ForeignKey",
}


class Taken(Exception):
    """The ApiDocumentId names a document already (any key's, sync or async)."""


@functools.cache
def _sql(vendor: str, placeholder: str = "%s") -> tuple[str, str]:
    """(reserve, store): the two statements, made once per backend and placeholder style."""
    quote = connection.ops.quote_name
    table = quote(ApiDocument._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _FIELDS)
    marks = ", ".join([placeholder] * len(_FIELDS))
    document_id = quote(ApiDocument._meta.get_field("document_id").column)
    # PostgreSQL's partitions hold (document_id, created_at) unique, SQLite's table document_id.
    unique = f"{document_id}, {quote('created_at')}" if vendor == "postgresql" else document_id
    insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    updates = ", ".join(f"{quote(f.column)} = excluded.{quote(f.column)}" for f in _FIELDS if not f.unique)
    status, is_async = quote("status"), quote("is_async")
    # Only the reserving call's own sync document, still InProcess, is completed; an async
    # document, or one already finished (a spooled row stored twice), is left as it is.
    store = (
        f"{insert} ON CONFLICT ({unique}) DO UPDATE SET {updates}"
        f" WHERE {table}.{status} = {int(ApiDocument.Status.IN_PROCESS)} AND NOT {table}.{is_async}"
    )
    reserve = insert
    if vendor == "postgresql":
        # One simple-query message: PostgreSQL runs it as one implicit transaction, so SET LOCAL
        # applies to this row's commit alone (Django's psycopg backend binds client-side).
        store = f"SET LOCAL synchronous_commit = off; {store}"
        reserve = f"WITH claim AS ({_CLAIM.format(claims=quote(DocumentIdClaim._meta.db_table), docs=table)})"
        reserve += f" INSERT INTO {table} ({columns}) SELECT {marks} FROM claim"
    return reserve, store


# The claim of an id (PostgreSQL): its params are the id, its moment, the id again. Nothing is
# claimed while a committed document has the id (a generated one given back as a caller's own).
_CLAIM = (
    "INSERT INTO {claims} (document_id, created_at) SELECT %s, %s"
    " WHERE NOT EXISTS (SELECT 1 FROM {docs} WHERE document_id = %s) ON CONFLICT DO NOTHING RETURNING 1"
)


def claim(document_id: uuid.UUID, created_at: datetime) -> bool:
    """Claim an id for a document about to be written in this transaction (an asynchronous
    call's, keys/chqapi/documents.py); False when it is taken. On SQLite the documents' own
    unique index refuses a second one, so nothing is claimed there."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return True
    quote = db.ops.quote_name
    sql = _CLAIM.format(claims=quote(DocumentIdClaim._meta.db_table), docs=quote(ApiDocument._meta.db_table))
    with db.cursor() as cursor:
        cursor.execute(sql, [document_id, created_at, document_id])
        return cursor.fetchone() is not None


def _converter(field: models.Field) -> Callable[[Any, BaseDatabaseWrapper], Any] | None:
    """How a row's value for `field` becomes the database's, with the backend's own adapters;
    None where the driver takes the value as it is. Not through the model field's
    get_db_prep_save: its layers cost more than the INSERT (50 µs a row, bench/profile_call.py).
    Rows come from api_call_record and the spool (dates as ISO text)."""
    if field.attname in _DATES:
        return lambda v, db: db.ops.adapt_datetimefield_value(datetime.fromisoformat(v) if isinstance(v, str) else v)
    if field.attname == "document_id":
        return lambda v, db: uuid.UUID(str(v)) if db.features.has_native_uuid_field else uuid.UUID(str(v)).hex
    if field.attname == "client_address":
        return lambda v, db: db.ops.adapt_ipaddressfield_value(v)
    if field.get_internal_type() in _DRIVER_TYPES:
        return None
    return lambda v, db: v if isinstance(v, _PLAIN) else field.get_db_prep_save(v, db)


# (name, default, converter) in column order. A row spooled before a field existed gets the
# field's default; a call's modified moment is its created one.
_COLUMNS = [(f.attname, f.get_default, _converter(f)) for f in _FIELDS]
_AT = {name: n for n, (name, _, _) in enumerate(_COLUMNS)}
_MISSING = object()


def _params(row: dict, db: BaseDatabaseWrapper) -> list:
    created = row.get("created_at") or timezone.now()
    params = []
    moments: dict[Any, Any] = {}  # a call's created, modified and ended moments are one: converted once
    for name, default, convert in _COLUMNS:
        value = row.get(name, _MISSING)
        if value is _MISSING or (value is None and name in _STAMPS):
            value = created if name in _STAMPS else default()
        if convert is None:
            params.append(value)
        elif name in _DATES:
            if value is not None and value not in moments:
                moments[value] = convert(value, db)
            params.append(None if value is None else moments[value])
        else:
            params.append(convert(value, db))
    return params


def _execute(statement: int, row: dict) -> int:
    """Run one statement on this thread's connection, committed when it returns (outside a
    transaction). On SQLite the driver's own connection runs it: the sqlite3 module keeps the
    statement prepared, where Django's cursor would rewrite its 25 placeholders by regex and
    wrap it, which cost a third of the whole write (bench/profile_call.py logged). Where
    queries are watched (assertNumQueries, the debug cursor, execute_wrapper hooks) Django's
    cursor runs it, so they see it."""
    db = connections[DEFAULT_DB_ALIAS]  # this thread's connection itself, not the proxy
    params = _params(row, db)
    if statement == 0 and db.vendor == "postgresql":  # the claim's params come first
        params = [params[_AT["document_id"]], params[_AT["created_at"]], params[_AT["document_id"]], *params]
    if db.in_atomic_block:  # a test's transaction, ATOMIC_REQUESTS: a savepoint keeps a refusal local
        with transaction.atomic(using=DEFAULT_DB_ALIAS), db.cursor() as cursor:
            cursor.execute(_sql(db.vendor)[statement], params)
            return cursor.rowcount
    if db.vendor == "sqlite" and not (db.execute_wrappers or db.queries_logged):
        db.close_if_health_check_failed()
        db.ensure_connection()
        with db.wrap_database_errors:  # the driver's errors as Django's (IntegrityError, ...)
            return db.connection.execute(_sql(db.vendor, "?")[statement], params).rowcount
    with db.cursor() as cursor:  # autocommit: the statement is its own transaction, committed when it returns
        cursor.execute(_sql(db.vendor)[statement], params)
        return cursor.rowcount


def reserve(row: dict) -> None:
    """Take a caller's ApiDocumentId for a sync call before its handler runs: its document,
    InProcess, committed. Raises Taken when any document has the id already."""
    try:
        stored = _execute(0, row | {"status": ApiDocument.Status.IN_PROCESS})
    except IntegrityError:
        # The id is taken, or the key or type went while the call started: tell them apart.
        if ApiDocument.objects.filter(document_id=row["document_id"]).exists():
            raise Taken from None
        stored = _execute(0, row | {"status": ApiDocument.Status.IN_PROCESS, "key_id": None, "api_type_id": None})
    if not stored:  # PostgreSQL: the id was not claimed
        raise Taken


def store_one(row: dict) -> None:
    """Store one finished row now; a row whose key or type is gone is kept without the
    reference. Raises when the database refuses it anyway."""
    try:
        _execute(1, row)
    except IntegrityError:
        _execute(1, row | {"key_id": None, "api_type_id": None})


def store(row: dict) -> bool:
    """Store a logged call's finished document before its answer is sent. Never raises:
    what the database refuses waits in the spool. Returns whether it was stored."""
    try:
        try:
            store_one(row)
        except DatabaseError:
            db = connections[DEFAULT_DB_ALIAS]
            if db.in_atomic_block:
                raise
            # A connection the server ended (a restart, pg_terminate_backend) fails once and for
            # all; a new one may well succeed, and the call has been answered: try once more.
            db.close_if_unusable_or_obsolete()
            store_one(row)
    except Exception as exc:  # the database refused it: keep it durably, say so, store it later
        spool.keep(row)
        log.error(
            "API document %s not stored (%s); kept in the spool to be stored later",
            row["document_id"],
            exc.__class__.__name__,
        )
        return False
    spool.replay_if_due()
    return True
