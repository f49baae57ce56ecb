"""What storing one logged call costs SQLite itself: the API document table's own
schema (read from a migrated scratch database), 40,000 rows inserted in WAL with
synchronous=NORMAL: one row per transaction, as keys/calllog/writer.py commits
each logged call before its answer, and in transactions of 200, what batching
would save; with every index, without the two unused ones (status partial), and
with only the unique document id. No Django in the loop. `python bench/log_insert.py` prints µs a row for each."""

import itertools
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process

ROWS, BATCH = 40_000, 200


def main() -> None:
    django_in_process("chq-insert-")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE tbl_name = 'keys_apidocument' AND sql IS NOT NULL")
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
    # What fewer indexes would save: request_type's is used by no query (API Document Export
    # compares LOWER(request_type)), key_id's is the head of (key_id, id DESC); the status index
    # is only asked about queued and running documents.
    unused = ("keys_apidocument_request_type", "keys_apidocument_key_id_", "keys_doc_status_started_idx")
    partial = "CREATE INDEX keys_doc_waiting ON keys_apidocument (status, started_at) WHERE status IN (0, 2)"
    for (name, keep, extra), batch in itertools.product(
        (
            ("every index", lambda sql: True, None),
            ("without two unused indexes, status partial", lambda sql: not any(u in sql for u in unused), partial),
            ("only the unique document id", lambda sql: not sql.startswith("CREATE INDEX"), None),
        ),
        (1, BATCH),
    ):
        database = sqlite3.connect(Path(tempfile.mkdtemp()) / "insert.sqlite3", isolation_level=None)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=NORMAL")
        for sql in [*filter(keep, schema), *([extra] if extra else [])]:
            database.execute(sql)
        started = time.perf_counter()
        for first in range(0, ROWS, batch):
            if batch == 1:  # one statement in autocommit: its own transaction, as keys/calllog/writer.py writes
                database.execute(insert, rows[first])
                continue
            database.execute("BEGIN IMMEDIATE")
            database.executemany(insert, rows[first : first + batch])
            database.execute("COMMIT")
        each = "one row a transaction" if batch == 1 else f"{batch} rows a transaction"
        print(f"{name}, {each}: {(time.perf_counter() - started) / ROWS * 1e6:.1f} µs a row")


if __name__ == "__main__":
    main()
