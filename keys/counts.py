"""Kept counts of API documents: API Document Export's exact TotalRecords without a COUNT(*).

`keys_documentcount` (keys.models.DocumentCount) holds, per key, API type, request
type, type name, status and source, how many documents there are. Database
triggers on `keys_apidocument` keep it, created by migration 0020 from the SQL
here: every write of a document, whoever makes it (the call log's prepared
INSERT and upsert, an async document's status changes, Django's SET_NULL when a
key or type is removed, admin, purge_api_logs, a bulk delete), changes the
counts in the same statement, so in the same transaction. No Python code writes
the counts.

On PostgreSQL an insert runs a row trigger (one upsert of a count), an UPDATE
or a DELETE a statement trigger with transition tables: a removed key's
million documents, or a purge's batch, is one grouped upsert per combination
(an update moves a document from its old combination to its new one).
A busy key's increments go to one of SLOTS rows picked at random, so
concurrent logged calls of one key do not queue on one row's lock. SQLite has
one writer at a time: row triggers, slot 0.

How it fails:
- A statement the triggers do not see leaves the counts wrong: TRUNCATE (on
  PostgreSQL; tests' flush empties both tables together), writes with triggers
  disabled (`session_replication_role = replica`, logical replication into this
  table), or a restore of keys_apidocument alone. `rebuild()` recounts from the
  documents (`manage.py shell -c "from keys import counts; counts.rebuild()"`).
- Readers see the counts of their own snapshot: between two statements of one
  export request (the sum, then the page) other calls may write, as with the
  COUNT(*) it replaces.
- The table grows with the number of distinct (type, status, source)
  combinations of a key, times SLOTS on PostgreSQL: a caller that sends a new
  Source on every call makes it as large as the documents table, and the sum slow.
- On PostgreSQL, many documents of a few combinations INSERTED in one
  transaction (a 1,000,000-row INSERT ... SELECT, a bulk_create wrapped in
  atomic()) update the same count rows over and over, each a new row version
  the next must step over until the commit: quadratic, minutes for a million.
  Commit in batches (10,000 rows: 1,000,000 documents in 43 s), or disable the
  triggers for a bulk load and rebuild() after it. Many UPDATE statements of
  one document each in one transaction do the same.
- A trigger's error (the counts table gone, a disk full) fails the document's own
  write, as any failure of that statement would: the call log spools it
  (keys/calllog/writer.py).
"""

from django.db import connection
from django.db.models import Case, Q, Sum, Value, When
from django.db.models.functions import Lower

from .models import ApiDocument, DocumentCount

SLOTS = 8
_DOCS = ApiDocument._meta.db_table
_COUNTS = DocumentCount._meta.db_table
# The columns a count is kept for, as the documents table has them (0 for a NULL key or type).
_GROUP = ["key_id", "api_type_id", "request_type", "api_type_name", "status", "source"]
_FROM_DOCUMENT = (
    "COALESCE({t}.key_id, 0), COALESCE({t}.api_type_id, 0), {t}.request_type, {t}.api_type_name, {t}.status, {t}.source"
)
_UNIQUE = ", ".join([*_GROUP, "slot"])
_COLUMNS = ", ".join([*_GROUP, "slot", "n"])
_ORDER = ", ".join(str(i) for i in range(1, len(_GROUP) + 1))


def _postgresql_add(row: str, d: int) -> str:
    return (
        f"INSERT INTO {_COUNTS} AS c ({_COLUMNS})"
        f" VALUES ({_FROM_DOCUMENT.format(t=row)}, floor(random() * {SLOTS})::smallint, {d})"
        f" ON CONFLICT ({_UNIQUE}) DO UPDATE SET n = c.n + excluded.n;"
    )


def _postgresql_function(name: str, body: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$"
    )


def _postgresql_summed(rows: str) -> str:
    """An upsert of a statement's documents, `rows` giving (the six columns, +1 or -1), summed per
    combination (an UPDATE that changed none of them sums to zero and writes nothing) and upserted
    in the order of the columns, so two statements never wait for each other's counts in a cycle."""
    return (
        f"INSERT INTO {_COUNTS} AS c ({_COLUMNS})"
        f" SELECT {', '.join(_GROUP)}, floor(random() * {SLOTS})::smallint, SUM(d)"
        f" FROM ({rows}) AS changed ({', '.join(_GROUP)}, d)"
        f" GROUP BY {_ORDER} HAVING SUM(d) <> 0 ORDER BY {_ORDER}"
        f" ON CONFLICT ({_UNIQUE}) DO UPDATE SET n = c.n + excluded.n;"
    )


_NEW = f"SELECT {_FROM_DOCUMENT.format(t='new_rows')}, 1 FROM new_rows"
_OLD = f"SELECT {_FROM_DOCUMENT.format(t='old_rows')}, -1 FROM old_rows"
# INSERT: a row trigger. A logged call writes one row a transaction, and a row trigger's upsert
# costs it about 25 µs where a statement trigger with a transition table cost 90 (a loaded 2-core
# machine). UPDATE and DELETE: statement triggers with transition tables, summed per combination.
# A row trigger updating the same count rows over and over in one transaction is quadratic (each
# update a row version the next must step over until the commit): Django's SET_NULL of a removed
# key's 100,000 documents, one UPDATE, took 35 s through a row trigger; a purge's batch is one
# DELETE. The price: every UPDATE of a document runs the function, about 60 µs, even one that
# changed no counted column (a trigger with transition tables takes no column list).
POSTGRESQL = [
    _postgresql_function("keys_doc_count_inserted", _postgresql_add("NEW", 1)),
    _postgresql_function("keys_doc_count_updated", _postgresql_summed(f"{_NEW} UNION ALL {_OLD}")),
    _postgresql_function("keys_doc_count_deleted", _postgresql_summed(_OLD)),
    f"CREATE TRIGGER keys_doc_count_insert AFTER INSERT ON {_DOCS}"
    " FOR EACH ROW EXECUTE FUNCTION keys_doc_count_inserted()",
    f"CREATE TRIGGER keys_doc_count_update AFTER UPDATE ON {_DOCS} REFERENCING OLD TABLE AS old_rows"
    " NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION keys_doc_count_updated()",
    f"CREATE TRIGGER keys_doc_count_delete AFTER DELETE ON {_DOCS} REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION keys_doc_count_deleted()",
]
POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS keys_doc_count_{op} ON {_DOCS}" for op in ("insert", "delete", "update")
] + [f"DROP FUNCTION IF EXISTS keys_doc_count_{op}()" for op in ("inserted", "deleted", "updated")]


def _sqlite_add(row: str, d: int) -> str:
    return (
        f"INSERT INTO {_COUNTS} ({_COLUMNS}) VALUES ({_FROM_DOCUMENT.format(t=row)}, 0, {d})"
        f" ON CONFLICT ({_UNIQUE}) DO UPDATE SET n = n + excluded.n;"
    )


_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _GROUP)
SQLITE = [
    f"CREATE TRIGGER keys_doc_count_insert AFTER INSERT ON {_DOCS} BEGIN {_sqlite_add('NEW', 1)} END",
    f"CREATE TRIGGER keys_doc_count_delete AFTER DELETE ON {_DOCS} BEGIN {_sqlite_add('OLD', -1)} END",
    # SQLite updates a row in place: a row trigger stays linear however many rows one UPDATE moves.
    f"CREATE TRIGGER keys_doc_count_update AFTER UPDATE OF {', '.join(_GROUP)} ON {_DOCS} WHEN {_CHANGED}"
    f" BEGIN {_sqlite_add('OLD', -1)} {_sqlite_add('NEW', 1)} END",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS keys_doc_count_{op}" for op in ("insert", "delete", "update")]

# Every existing document counted once, in slot 0. Run after the triggers are made, in their
# transaction: on PostgreSQL CREATE TRIGGER holds off every write of the documents until the
# migration commits, so no document is counted by both.
BACKFILL = (
    f"INSERT INTO {_COUNTS} ({_COLUMNS}) SELECT {_FROM_DOCUMENT.format(t=_DOCS)}, 0, COUNT(*)"
    f" FROM {_DOCS} GROUP BY {_ORDER}"
)


def install(schema_editor, *, backfill: bool = True) -> None:
    """The triggers and (`backfill`) the counts of the documents already there (migration 0020;
    0021 makes the triggers again on the partitioned table, whose documents are counted)."""
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"kept document counts have no triggers for {vendor}")
    for statement in [*(POSTGRESQL if vendor == "postgresql" else SQLITE), *([BACKFILL] if backfill else [])]:
        schema_editor.execute(statement, params=None)


def uninstall(schema_editor) -> None:
    for statement in POSTGRESQL_DROP if schema_editor.connection.vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, params=None)


def forget_partition(cursor, table: str) -> int:
    """Take a partition's documents out of the counts, before it is detached and dropped (which
    no trigger sees); returns how many it held. Run in the dropping transaction, with the
    partition locked against writes (keys/partitions.py), so the counts stay exact: one grouped
    read of the partition and one upsert per combination."""
    gone = f"SELECT {_FROM_DOCUMENT.format(t=table)}, COUNT(*) AS n FROM {table} GROUP BY {_ORDER}"
    upsert = _postgresql_summed(f"SELECT {', '.join(_GROUP)}, -n FROM gone").rstrip(";")
    cursor.execute(
        f"WITH gone ({', '.join(_GROUP)}, n) AS ({gone}), forgotten AS ({upsert}) SELECT COALESCE(SUM(n), 0) FROM gone"
    )
    return int(cursor.fetchone()[0])


def rebuild() -> None:
    """Count every document again (after a write the triggers did not see)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_COUNTS}")
        cursor.execute(BACKFILL)


# --- reading ----------------------------------------------------------------------------------

FOLDED = {"request_folded": Lower("request_type"), "type_name_folded": Lower("api_type_name")}


def total(key_id: int, conditions: list[Q]) -> int:
    """How many documents of the key meet every condition (API Document Export's filters,
    written for ApiDocument's columns): exactly what COUNT(*) of them would say."""
    found = DocumentCount.objects.filter(key_id=key_id).alias(**FOLDED).filter(*conditions)
    return found.aggregate(total=Sum("n"))["total"] or 0


def resolved(key_id: int, conditions: list[Q]) -> list[Q]:
    """Each of `conditions` (ApiType filters: an OR over the type's id and folded names, which no
    index serves) as the exact columns of the key's documents that meet it: `api_type_id IN
    (...)` for the types all of whose documents do, which the (key, api_type, id) index serves,
    and the few other combinations (a type's documents made under another name, those of a
    removed type) spelled out. One query on the counts for all of them."""
    if not conditions:
        return []
    meets = {f"meets_{i}": Case(When(c, then=Value(1)), default=Value(0)) for i, c in enumerate(conditions)}
    combinations = (
        DocumentCount.objects.filter(key_id=key_id)
        .alias(**FOLDED)
        .values("api_type_id", "request_type", "api_type_name")
        .annotate(total=Sum("n"), **meets)
        .filter(total__gt=0)
        .values_list("api_type_id", "request_type", "api_type_name", *meets)
    )
    rows = list(combinations)
    return [
        _exact([row[:3] for row in rows if row[3 + i]], [row[:3] for row in rows if not row[3 + i]])
        for i in range(len(conditions))
    ]


def _exact(meeting: list[tuple[int, str, str]], others: list[tuple[int, str, str]]) -> Q:
    whole = {type_id for type_id, _, _ in meeting} - {type_id for type_id, _, _ in others} - {0}
    exact = Q(api_type_id__in=whole)
    for type_id, request_type, name in meeting:
        if type_id not in whole:
            typed = Q(api_type__isnull=True) if type_id == 0 else Q(api_type_id=type_id)
            exact |= typed & Q(request_type=request_type, api_type_name=name)
    return exact
