"""Log viewer paging at 1,000,000 stored calls.

Fills a scratch database with stored calls for one key (BENCH_ROWS, default
1,000,000) and prints the median server-side time of the log viewer's first
page, a page half-way down (keyset `before=`), a page filtered by API type,
and a status-code filter, next to the same pages measured on 1,000 rows in the
same process. Run: `.venv/bin/python bench/log_paging.py`; DATABASE_URL=postgres://...
for PostgreSQL.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process

django_in_process("chq-logs-")

import django  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from keys.models import ApiDocument, ApiKey, ApiType  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = 15


def fill(key: ApiKey, types: list[ApiType], n: int) -> None:
    batch = 20_000
    for start in range(0, n, batch):
        ApiDocument.objects.bulk_create(
            [
                ApiDocument(
                    key=key,
                    key_last4="beef",
                    api_type=types[i % len(types)],
                    api_type_name=types[i % len(types)].name,
                    method="POST",
                    path="/chqapi/export/x",
                    status_code=200 if i % 50 else 500,
                    duration_ms=1.0,
                    request_body="{}",
                    response_body="{}",
                )
                for i in range(start, min(start + batch, n))
            ],
            batch_size=batch,
        )


def median_ms(client: Client, url: str, params: dict) -> float:
    client.get(url, params)
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return statistics.median(times)


def measure(client: Client, key: ApiKey, api_type: ApiType) -> dict[str, float]:
    url = reverse("keys:logs", args=[key.pk])
    ids = ApiDocument.objects.filter(key=key).order_by("id").values_list("id", flat=True)
    middle = ids[ids.count() // 2]
    return {
        "first page": median_ms(client, url, {}),
        "half-way (before=)": median_ms(client, url, {"before": middle}),
        "one API type": median_ms(client, url, {"api_type": api_type.pk}),
        "status 500": median_ms(client, url, {"status": 500}),
    }


def main() -> None:
    user, _ = User.objects.get_or_create(username="bench")
    user.groups.add(Group.objects.get(name="Integration viewers"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    types = list(ApiType.objects.order_by("pk")[:10])

    small = ApiKey.objects.create(description="small")
    fill(small, types, 1_000)
    baseline = measure(client, small, types[3])

    big = ApiKey.objects.create(description="big")
    started = time.perf_counter()
    fill(big, types, ROWS)
    print(f"database: {django.db.connection.vendor}; filled {ROWS:,} rows in {time.perf_counter() - started:.0f} s")
    large = measure(client, big, types[3])

    print(f"{'page':<22}{'1,000 rows ms':>15}{f'{ROWS:,} rows ms':>20}{'ratio':>8}")
    for name, base in baseline.items():
        print(f"{name:<22}{base:>15.1f}{large[name]:>20.1f}{large[name] / base:>8.2f}")


if __name__ == "__main__":
    main()
