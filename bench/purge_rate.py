"""How fast old API documents are deleted: keys/retention.py's documents_purge (what
`purge_api_logs` and KEYS_LOG_RETENTION_DAYS run) against the ORM delete it replaced
(ids of 1,000 rows, then `filter(id__in=...).delete()`, whose collector loads every row).

`python bench/purge_rate.py` on a scratch SQLite database, or with DATABASE_URL on
PostgreSQL (a database of its own: the documents table is emptied first). It fills
PURGE_ROWS documents (default 200,000) of one key through the model, bulk_create in
batches, created over 60 days: in time order (PURGE_ORDER=time, the default: as logged
calls arrive) or in random order (PURGE_ORDER=random: ids and times unrelated, the worst
case for deleting by time, each batch's rows on pages all over the table),
98% synchronous with ~300-byte bodies, 2% asynchronous exports with two answer chunks,
a few still queued or running; then deletes the older half and prints rows a second
(PURGE_BATCH documents a batch, default 5,000).
The old way runs on PURGE_OLD_ROWS (default: as many; 0: not at all) of the same kind, for comparison."""

import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process

ROWS = int(os.environ.get("PURGE_ROWS", "200000"))
OLD_ROWS = int(os.environ.get("PURGE_OLD_ROWS", str(ROWS)))
ORDER = os.environ.get("PURGE_ORDER", "time")
BATCH = int(os.environ.get("PURGE_BATCH", "5000"))  # documents_purge's batch
FILL_BATCH = 5000


def fill(key, n: int, now) -> None:
    from keys.models import ApiDocument, ApiDocumentChunk

    S = ApiDocument.Status
    rng = random.Random(24)
    body = '{"Source": "bench", "Data": {"Items": [' + ", ".join(['{"Sku": "A-1", "Qty": 3}'] * 10) + "]}}"
    for start in range(0, n, FILL_BATCH):
        docs = []
        for _ in range(min(FILL_BATCH, n - start)):
            is_async = rng.random() < 0.02
            status = rng.choice([S.IN_QUEUE, S.IN_PROCESS]) if is_async and rng.random() < 0.05 else S.SUCCESSFUL
            if not is_async and rng.random() < 0.03:
                status = S.ERROR
            age = rng.uniform(0, 1) if ORDER == "random" else 1 - (start + len(docs)) / n
            when = now - timedelta(seconds=age * 60 * 86400)
            docs.append(
                ApiDocument(
                    key=key,
                    key_last4="abcd",
                    api_type_name="Inventory Export" if is_async else "Inventory Import",
                    request_type="inventory-export" if is_async else "inventory-import",
                    method="POST",
                    path="/chqapi/import/inventory",
                    source=rng.choice(["erp", "shop", "wms"]),
                    is_async=is_async,
                    status=status,
                    status_code=200,
                    duration_ms=1.5,
                    created_at=when,
                    modified_at=when,
                    request_body=body,
                    response_body='{"Received": 10}',
                )
            )
        made = ApiDocument.objects.bulk_create(docs)
        chunks = [
            ApiDocumentChunk(document=d, seq=seq, text="x" * 2000)
            for d in made
            if d.is_async and d.status == S.SUCCESSFUL
            for seq in (1, 0)
        ]
        ApiDocumentChunk.objects.bulk_create(chunks)


def old_way(before) -> int:
    """The purge before this round: 1,000 ids per transaction, deleted through the ORM."""
    from django.db import transaction

    from keys.models import ApiDocument

    logs = ApiDocument.objects.filter(created_at__lt=before, status__in=[3, 4])
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(logs.order_by("id").values_list("id", flat=True)[:1000])
            if not ids:
                return deleted
            deleted += ApiDocument.objects.filter(id__in=ids).delete()[1].get("keys.ApiDocument", 0)


def main() -> None:
    django_in_process("chq-purge-")
    from django.db import connection
    from django.utils import timezone

    from keys.models import ApiDocument, ApiDocumentChunk
    from keys.retention import documents_purge
    from keys.services import api_key_create

    ApiDocumentChunk.objects.all().delete()
    ApiDocument.objects.all()._raw_delete(connection.alias)  # a clean table for a rerun (bench only)
    key = api_key_create(description="purge bench", is_active=True, allowed_for_all=True)
    now = timezone.now()
    before = now - timedelta(days=30)
    print(f"{connection.vendor}: {ROWS:,} documents in {ORDER} order, deleting those older than 30 of 60 days")
    for name, n, run in (
        (f"documents_purge (batches of {BATCH:,})", ROWS, lambda: documents_purge(before=before, batch=BATCH).deleted),
        ("old: ORM delete of 1,000 ids", OLD_ROWS, lambda: old_way(before)),
    ):
        if not n:
            continue
        started = time.perf_counter()
        fill(key, n, now)
        filled = time.perf_counter() - started
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE keys_apidocument")
        started = time.perf_counter()
        deleted = run()
        took = time.perf_counter() - started
        print(f"  {name}: {deleted:,} deleted in {took:.2f} s = {deleted / took:,.0f} rows/s (fill {filled:.1f} s)")
        ApiDocumentChunk.objects.all().delete()
        ApiDocument.objects.all()._raw_delete(connection.alias)


if __name__ == "__main__":
    main()
