"""How much memory an asynchronous export of many rows takes: in the task worker
(documents.run) and in the web worker answering its status (the answer read
whole), each as the rise of resident memory over the step and as tracemalloc's
peak, for the calling key's own API documents (API Document Export) on a scratch
SQLite database (or DATABASE_URL's). Each row count runs in a fresh process for a
fair RSS figure: `python bench/async_export_memory.py 30000`.
`python bench/async_export_memory.py [ROWS ...]` (default 3000 30000) prints MB a step."""

import gc
import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def rss_growth_mb(step) -> float:
    """How far the process's resident memory rose above its size before `step` (Linux:
    writing 5 to clear_refs resets the high-water mark VmHWM)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_kb("VmRSS")
    step()
    return (_status_kb("VmHWM") - before) / 1024


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

    def queued() -> str:
        return client.post("/chqapi/export/apidocument/async", "{}", content_type="application/json").json()["Id"]

    def answer(document_id: str) -> int:
        response = client.post("/chqapi/status", json.dumps(document_id), content_type="application/json")
        parts = response.streaming_content if response.streaming else [response.content]
        return sum(len(part) for part in parts)

    measured, traced = queued(), queued()
    # First, without tracemalloc's bookkeeping (and before its run has grown the heap): what resident memory does.
    worker_rss = rss_growth_mb(lambda: documents.run(measured))
    status_rss = rss_growth_mb(lambda: answer(measured))
    worker, _ = peak_mb(lambda: documents.run(traced))
    status, size = peak_mb(lambda: answer(traced))
    return {
        "rows": rows,
        "answer_mb": size / 2**20,
        "worker_peak_mb": worker,
        "status_peak_mb": status,
        "worker_rss_mb": worker_rss,
        "status_rss_mb": status_rss,
    }


def main() -> None:
    django_in_process("chq-async-memory-")
    for rows in [int(arg) for arg in sys.argv[1:]] or [3000, 30000]:
        found = measure(rows)
        print(
            f"{found['rows']:>7} rows, answer {found['answer_mb']:5.1f} MB: "
            f"worker peak {found['worker_peak_mb']:5.1f} MB (RSS +{found['worker_rss_mb']:5.1f} MB), "
            f"status peak {found['status_peak_mb']:5.1f} MB (RSS +{found['status_rss_mb']:5.1f} MB)"
        )


if __name__ == "__main__":
    main()
