"""A key's rate holds across worker processes: a real gunicorn with several workers, called
at once from many connections, lets the limit through in a window and answers the rest 429
with Retry-After and the RateLimit fields. On the embedded default (the shared file) and,
with REDIS_TEST_URL, on Redis."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import servers

# The key's rate set as every change is made (a save: each worker's decision cache learns of it).
SET_RATE = (
    "import uuid; from keys.models import ApiKey; key = ApiKey.objects.with_value(uuid.UUID('{key}')).get();"
    " key.rate_per_minute = {limit}; key.save()"
)
WORKERS = 3
LIMIT = 20
CALLS = 3 * LIMIT
REDIS_URL = os.environ.get("REDIS_TEST_URL")


@pytest.fixture(params=["file", "redis"])
def server(request, tmp_path):
    env = {}
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it)")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        env = {"CACHE_URL": REDIS_URL}  # the counts in Redis (keys.cache.RedisCache's script), as REDIS_URL does
    running = servers.start(tmp_path, workers=WORKERS, extra_env=env)
    yield running
    running.stop()


def test_a_rate_per_minute_holds_across_the_workers(server):
    key = server.manage("create_api_key", "--description", "limited", "--all", "--quiet")
    server.manage("shell", "-c", SET_RATE.format(key=key, limit=LIMIT))
    # All the calls in one minute of the clock: start early in one.
    if time.time() % 60 > 40:
        time.sleep(60 - time.time() % 60 + 0.5)

    def call(_):
        status, body, headers = server.post("/chqapi/export/inventory", headers={"ApiKey": key})
        return status, body, headers

    started = time.time()
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(call, range(CALLS)))
    assert time.time() - started < 20, "the calls must fall in one minute"
    through = [a for a in answers if a[0] == 501]  # let through; the test host serves no handler
    limited = [a for a in answers if a[0] == 429]
    assert len(through) == LIMIT
    assert len(limited) == CALLS - LIMIT
    for _, body, headers in limited:
        assert json.loads(body)["Message"].startswith("Too many calls with this API key")
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert headers["RateLimit-Policy"] == f'"minute";q={LIMIT};w=60'
        assert headers["RateLimit"].startswith('"minute";r=0;t=')
    # An allowed answer carries the fields once half the window or less is left (keys.quotas.near_limit).
    remaining = sorted(int(h["RateLimit"].split(";")[1][2:]) for _, _, h in through if "RateLimit" in h)
    assert remaining == list(range(LIMIT // 2 + 1))  # each let-through call saw its own count: none counted twice
