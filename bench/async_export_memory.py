"""How much memory an asynchronous export of many rows takes: in the task worker
(documents.run) and in the web worker answering its status (the answer read
whole), each as tracemalloc's peak over the step, for the calling key's own API
documents (API Document Export) on a scratch SQLite database.
`python bench/async_export_memory.py [ROWS ...]` (default 3000 30000) prints MB a step."""

import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process


def peak_mb(step) -> tuple[float, object]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, result


def measure(rows: int) -> dict:
    from django.test import Client

    from keys.chqapi import documents
    from keys.models import ApiDocument
    from keys.services import api_key_create

    key = api_key_create(description="bench", is_active=True, allowed_for_all=True)
    defaults = {"key_last4": "0000", "api_type_name": "x", "request_type": "location-export", "method": "POST"}
    ApiDocument.objects.bulk_create(
        (ApiDocument(key_id=key.pk, path="/", status_code=200, duration_ms=1.0, **defaults) for _ in range(rows)),
        batch_size=2000,
    )
    client = Client(HTTP_HOST="localhost", HTTP_APIKEY=str(key.value))
    document_id = client.post("/chqapi/export/apidocument/async", "{}", content_type="application/json").json()["Id"]
    worker, _ = peak_mb(lambda: documents.run(document_id))

    def answer() -> int:
        response = client.post("/chqapi/status", json.dumps(document_id), content_type="application/json")
        parts = response.streaming_content if response.streaming else [response.content]
        return sum(len(part) for part in parts)

    status, size = peak_mb(answer)
    return {"rows": rows, "answer_mb": size / 2**20, "worker_peak_mb": worker, "status_peak_mb": status}


def main() -> None:
    django_in_process("chq-async-memory-")
    for rows in [int(arg) for arg in sys.argv[1:]] or [3000, 30000]:
        found = measure(rows)
        print(
            f"{found['rows']:>7} rows, answer {found['answer_mb']:6.1f} MB: "
            f"worker peak {found['worker_peak_mb']:6.1f} MB, status peak {found['status_peak_mb']:6.1f} MB"
        )


if __name__ == "__main__":
    main()
