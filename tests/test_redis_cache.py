"""The decision cache on a real, shared Redis: zero queries when warm, and a
change made in one process seen by the very next call in another."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from keys.access import decide
from keys.services import GrantSpec, api_key_change

REDIS_URL = os.environ.get("REDIS_TEST_URL")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it)"
)


@pytest.fixture
def redis_cache():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    # The backend REDIS_URL gives in production (chq/settings.py).
    caches = {"default": {"BACKEND": "chq.cache.RedisCache", "LOCATION": REDIS_URL}}
    # Changing CACHES makes Django drop its cache connections (django.test.signals).
    with override_settings(CACHES=caches, KEYS_DECISION_CACHE=True):
        yield


def test_one_redis_client_serves_every_operation(redis_cache):
    from django.core.cache import cache

    client = cache._cache.get_client()
    assert cache._cache.get_client(write=True) is client
    cache.set("a", 1)
    assert cache.add("b", 2)
    assert not cache.add("b", 3)
    assert cache.incr("a") == 2
    assert cache.get_many(["a", "b"]) == {"a": 2, "b": 2}
    cache.delete_many(["a", "b"])
    assert cache.get("a") is None


def test_redis_url_gives_the_reused_client_backend():
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env |= {"REDIS_URL": REDIS_URL, "DEBUG": "true", "SECRET_KEY": "x"}
    assert run(env, "shell", "-v", "0", "-c", code) == "chq.cache.RedisCache"


@pytest.mark.django_db
def test_warm_cache_makes_no_query(redis_cache, make_key, inventory_export, django_assert_num_queries):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert decide(key.value, direction="export", api_id="inventory").allowed
    with django_assert_num_queries(0):
        decision = decide(key.value, direction="export", api_id="inventory")
    assert decision.logged


@pytest.mark.django_db(transaction=True)
def test_change_seen_by_next_call_after_commit(redis_cache, migrated_data, make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    assert decide(key.value, direction="export", api_id="inventory").allowed
    api_key_change(key=key, is_active=False)
    assert decide(key.value, direction="export", api_id="inventory").reason == "inactive key"


def run(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_freshness_across_two_processes(tmp_path):
    """Process A answers calls; process B changes the key through a command.
    A's very next call sees each change, though A's decisions come from Redis."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "DJANGO_SETTINGS_MODULE": "chq.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "CACHE_URL": REDIS_URL,
        "KEYS_DECISION_CACHE": "true",
    }
    run(env, "migrate", "--no-input", "-v", "0")
    value = run(env, "create_api_key", "--description", "shared", "--type", "export:inventory", "--quiet")
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "redis_worker.py")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def ask() -> tuple[str, int]:
        worker.stdin.write(f"{value} export inventory\n")
        worker.stdin.flush()
        reason, queries = worker.stdout.readline().strip().split("|")
        return reason, int(queries)

    try:
        assert ask()[0] == "allowed"
        assert ask() == ("allowed", 0)  # warm: served from Redis
        run(env, "update_api_key", value, "--deactivate")
        assert ask()[0] == "inactive key"
        run(env, "update_api_key", value, "--activate", "--remove-type", "export:inventory")
        assert ask()[0] == "API type not allowed"
        run(env, "update_api_key", value, "--add-type", "Inventory Export")
        assert ask()[0] == "allowed"
        run(env, "remove_api_key", value, "--yes")
        assert ask()[0] == "unknown key"
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)


def test_counters_count_in_one_round_trip_and_expire_with_their_window(redis_cache):
    import time

    from django.core.cache import cache

    from keys import shared

    calls = []
    client = cache._cache.get_client(write=True)
    real = client.pipeline
    client.pipeline = lambda *a, **k: calls.append("pipeline") or real(*a, **k)
    try:
        with override_settings(KEYS_SHARED_COUNTERS="cache"):
            assert shared.incr([("windowed", 1), ("forever", None)]) == [1, 1]
            assert calls == ["pipeline", "pipeline"]  # the count, then the new window's expiry
            calls.clear()
            assert shared.incr([("windowed", 1), ("forever", None)]) == [2, 2]
            assert calls == ["pipeline"]  # counting again: one round trip
            assert cache.get_many(["windowed", "forever"]) == {"windowed": 2, "forever": 2}
            assert client.ttl(cache.make_key("forever")) == -1
            time.sleep(1.2)
            assert shared.incr([("windowed", 1)]) == [1]  # the window passed: counting starts again
    finally:
        del client.pipeline
