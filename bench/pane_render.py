"""Server-side render times of the keys pane and the API key dialog.

Fills a scratch database with 10,000 keys and 1,000 extra API types and
prints the median time of repeated requests through Django's test client,
next to a baseline measured in the same process on a small data set (30 keys,
the 126-type catalog). Run: `make bench` or `.venv/bin/python bench/pane_render.py`.
Set DATABASE_URL to measure on PostgreSQL; the default is a scratch SQLite file.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_in_process

django_in_process("chq-bench-")

import django  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from keys.models import ApiKey, ApiKeyGrant, ApiType  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "25"))
SMALL_KEYS = 30


def median_ms(client: Client, url: str) -> float:
    client.get(url)  # warm caches and template loading
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        response = client.get(url, HTTP_HOST="localhost")
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times)


def measure(client: Client, edit_key: ApiKey) -> dict[str, float]:
    return {
        "pane, first page": median_ms(client, reverse("keys:pane")),
        "dialog, new key": median_ms(client, reverse("keys:new")),
        "dialog, edit key": median_ms(client, reverse("keys:edit", args=[edit_key.pk])),
    }


def main() -> None:
    print(f"database: {django.db.connection.vendor} ({os.environ['DATABASE_URL'].split('@')[-1]})")
    ApiKeyGrant.objects.all().delete()
    ApiKey.objects.all().delete()
    ApiType.objects.filter(api_id__startswith="bench-").delete()
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Integration administrators"))
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    # A full first page (25 rows) in both runs, so the ratio shows the cost of the data size alone.
    ApiKey.objects.bulk_create(ApiKey(description=f"key {i}", is_active=True) for i in range(SMALL_KEYS))
    small_key = ApiKey.objects.first()
    ApiKeyGrant.objects.bulk_create(ApiKeyGrant(key=small_key, api_type=t) for t in ApiType.objects.all()[:20])
    baseline = measure(client, small_key)
    small_types = ApiType.objects.count()

    ApiKey.objects.bulk_create(
        (ApiKey(description=f"bench key {i}", is_active=i % 3 != 0) for i in range(10_000 - SMALL_KEYS)),
        batch_size=2000,
    )
    ApiType.objects.bulk_create(
        ApiType(direction="export", api_id=f"bench-{i}", name=f"Bench Type {i:04d} Export") for i in range(1_000)
    )
    big_key = ApiKey.objects.first()
    ApiKeyGrant.objects.bulk_create(ApiKeyGrant(key=big_key, api_type=t) for t in ApiType.objects.all()[:500])
    large = measure(client, big_key)

    print(f"baseline: {SMALL_KEYS} keys, {small_types} API types;")
    print(f"large:    {ApiKey.objects.count()} keys, {ApiType.objects.count()} API types; median of {REPEAT} requests")
    print(f"{'view':<20}{'baseline ms':>14}{'large ms':>12}{'ratio':>8}")
    for name, base in baseline.items():
        print(f"{name:<20}{base:>14.1f}{large[name]:>12.1f}{large[name] / base:>8.2f}")


if __name__ == "__main__":
    main()
