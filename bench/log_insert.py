"""What storing one logged call costs SQLite itself: the API document table's own
schema (read from a migrated scratch database), rows inserted in WAL with
synchronous=NORMAL, no Django in the loop. `python bench/log_insert.py` prints µs a row:

- 40,000 rows (LOG_INSERT_ROWS) one per transaction, as keys/calllog/writer.py commits each
  logged call before its answer, and in transactions of 200 (what batching would save),
  medians of LOG_INSERT_ROUNDS rounds (default 3): with the migrated indexes and the kept
  counts' triggers, without the triggers, without the three indexes migration 0020 added for
  API Document Export, with the three that migration 0017 dropped put back (what they cost
  each call), and with only the unique document id;
- at scale (LOG_INSERT_SCALE rows, default 1,000,000, 0 for none; one per transaction): random
  GUIDs (uuid4) against time-ordered ones (keys.models.new_document_id, UUID version 7)
  as document ids, µs a row over each successive 100,000."""

import itertools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process

ROWS, BATCH = int(os.environ.get("LOG_INSERT_ROWS", "40000")), 200
ROUNDS = int(os.environ.get("LOG_INSERT_ROUNDS", "3"))
SCALE, SPAN = int(os.environ.get("LOG_INSERT_SCALE", "1000000")), 100_000


def main() -> None:
    django_in_process("chq-insert-")
    from django.db import connection

    with connection.cursor() as cursor:
        # The kept counts' table first: the documents' triggers write it (keys/counts.py).
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('keys_documentcount', 'keys_apidocument')"
            " AND sql IS NOT NULL ORDER BY tbl_name = 'keys_apidocument', type = 'trigger'"
        )
        schema = [sql for (sql,) in cursor.fetchall()]
        cursor.execute("PRAGMA table_info(keys_apidocument)")
        columns = [row[1] for row in cursor.fetchall() if row[1] != "id"]
    sample = {
        "created_at": "2026-11-28 13:03:59.016448",
        "modified_at": "2026-11-28 13:03:59.016448",
        "started_at": "2026-11-28 13:03:59.016297",
        "ended_at": "2026-11-28 13:03:59.016448",
        "key_id": 2,
        "key_last4": "57fd",
        "key_description": "bench",
        "api_type_id": 20,
        "api_type_name": "Inventory Import",
        "request_type": "inventory-import",
        "method": "POST",
        "path": "/chqapi/import/inventory",
        "source": "bench",
        "is_async": 0,
        "status": 3,
        "status_code": 200,
        "duration_ms": 0.15,
        "error_message": "",
        "lines": "[]",
        "client_address": "127.0.0.1",
        "keep_content": 1,
        "request_body": '{"Source": "bench", "Data": {"Items": [{"Sku": "A-1", "Qty": 3}]}}',
        "response_body": '{"Received": 1}',
        "truncated": 0,
    }
    rows = [[(uuid.uuid4().hex if c == "document_id" else sample.get(c)) for c in columns] for _ in range(ROWS)]
    insert = f"INSERT INTO keys_apidocument ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    # The indexes migration 0017 dropped: request_type's served no query (API Document Export
    # compares it case-insensitively), key_id's is the head of (key_id, id DESC), and the status
    # index held every finished document although only running ones are asked for.
    dropped = [
        "CREATE INDEX old_request_type ON keys_apidocument (request_type)",
        "CREATE INDEX old_key_id ON keys_apidocument (key_id)",
        "CREATE INDEX old_status_started ON keys_apidocument (status, started_at)",
    ]
    # What migration 0020 added: the kept counts' triggers, and three indexes of API Document Export.
    export_indexes = ("keys_doc_key_modified_idx", "keys_doc_key_state_idx", "keys_doc_key_source_idx")

    def no_triggers(sql: str) -> bool:
        return not sql.startswith("CREATE TRIGGER keys_doc_count")

    def no_export_indexes(sql: str) -> bool:
        return not any(index in sql for index in export_indexes)

    configurations = list(
        itertools.product(
            (
                ("migrated indexes and triggers", lambda sql: True, []),
                ("without the kept counts' triggers", no_triggers, []),
                ("without 0020's three indexes", no_export_indexes, []),
                ("without 0020's triggers nor indexes", lambda sql: no_triggers(sql) and no_export_indexes(sql), []),
                ("with the three 0017 dropped", lambda sql: True, dropped),
                ("only the unique document id", lambda sql: not sql.startswith(("CREATE INDEX", "CREATE TRIGGER")), []),
            ),
            (1, BATCH),
        )
    )
    # Rounds alternate the configurations, and each prints its median: a shared machine's noise
    # lands on all of them alike.
    timings: dict[tuple[str, int], list[float]] = {}
    for _, ((name, keep, extra), batch) in itertools.product(range(ROUNDS), configurations):
        database = sqlite3.connect(Path(tempfile.mkdtemp()) / "insert.sqlite3", isolation_level=None)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=NORMAL")
        for sql in [*filter(keep, schema), *extra]:
            database.execute(sql)
        started = time.perf_counter()
        for first in range(0, ROWS, batch):
            if batch == 1:  # one statement in autocommit: its own transaction, as keys/calllog/writer.py writes
                database.execute(insert, rows[first])
                continue
            database.execute("BEGIN IMMEDIATE")
            database.executemany(insert, rows[first : first + batch])
            database.execute("COMMIT")
        timings.setdefault((name, batch), []).append((time.perf_counter() - started) / ROWS * 1e6)
    for (name, batch), each in timings.items():
        per = "one row a transaction" if batch == 1 else f"{batch} rows a transaction"
        print(f"{name}, {per}: {statistics.median(each):.1f} µs a row (median of {ROUNDS})")

    from keys.models import new_document_id

    where = columns.index("document_id")
    template = rows[0]
    for name, make in (("random GUIDs (uuid4)", uuid.uuid4), ("time-ordered GUIDs (uuid7)", new_document_id)):
        if not SCALE:
            break
        database = sqlite3.connect(Path(tempfile.mkdtemp()) / "scale.sqlite3", isolation_level=None)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=NORMAL")
        for sql in schema:
            database.execute(sql)
        spans, started = [], time.perf_counter()
        for n in range(1, SCALE + 1):
            row = template.copy()
            row[where] = make().hex  # as Django stores a UUIDField on SQLite
            database.execute(insert, row)
            if n % SPAN == 0:
                now = time.perf_counter()
                spans.append(f"{(now - started) / SPAN * 1e6:.0f}")
                started = now
        print(f"at scale, {name}: µs a row over each {SPAN:,}: {' '.join(spans)}")


if __name__ == "__main__":
    main()
