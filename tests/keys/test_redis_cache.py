"""The decision cache on a real, shared Redis: zero queries when warm, and a
change made in one process seen by the very next call in another."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from django.test import override_settings

from keys.access import decide
from keys.services import GrantSpec, api_key_change

REDIS_URL = os.environ.get("REDIS_TEST_URL")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it)"
)


@pytest.fixture
def redis_cache():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    # The backend REDIS_URL gives in production (chq/settings.py).
    caches = {"default": {"BACKEND": "keys.cache.RedisCache", "LOCATION": REDIS_URL}}
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
    assert run(env, "shell", "-v", "0", "-c", code) == "keys.cache.RedisCache"


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


# --- reads held between Redis's invalidation pushes (keys.cache.TrackedReads) -------------

MARKER = "keys:decision:version"


def command_calls(name: str) -> int:
    import redis

    stats = redis.Redis.from_url(REDIS_URL).info("commandstats")
    return stats.get(f"cmdstat_{name}", {}).get("calls", 0)


def other_client():
    """Another Redis client, as another process or host would write."""
    import redis

    return redis.Redis.from_url(REDIS_URL)


def test_held_reads_make_no_round_trip_and_see_a_write_by_any_client(redis_cache):
    from django.core.cache import cache

    cache.set(MARKER, 7)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 7}
    before = command_calls("mget")
    for _ in range(50):
        assert cache.get_many_tracked([MARKER]) == {MARKER: 7}
    assert command_calls("mget") == before  # held: not one read went to Redis
    other_client().incr(cache.make_key(MARKER))  # the INCR's reply came after the push was sent
    assert cache.get_many_tracked([MARKER]) == {MARKER: 8}
    other_client().delete(cache.make_key(MARKER))
    assert cache.get_many_tracked([MARKER]) == {}


def test_no_held_read_is_stale_right_after_another_clients_write(redis_cache):
    """The race that matters: another client's write has returned, and this process reads at
    once. Redis queued the push before it replied, so the held copy is always dropped."""
    from django.core.cache import cache

    cache.set(MARKER, 0)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 0}
    writer, key = other_client(), cache.make_key(MARKER)
    stale = 0
    for _ in range(5000):
        value = writer.incr(key)
        stale += cache.get_many_tracked([MARKER]) != {MARKER: value}
    assert stale == 0


def test_an_absent_key_is_held_as_absent_until_it_is_written(redis_cache):
    from django.core.cache import cache

    block = "keys:throttle:block:10.0.0.1"
    assert cache.get_many_tracked([block]) == {}
    before = command_calls("mget")
    assert cache.get_many_tracked([block]) == {}
    assert command_calls("mget") == before
    other_client().set(cache.make_key(block), cache._cache._serializer.dumps(1e12))
    assert cache.get_many_tracked([block]) == {block: 1e12}


def test_this_processs_own_write_is_seen_at_once(redis_cache):
    from django.core.cache import cache

    cache.set(MARKER, 1)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 1}
    for write, expected in [
        (lambda: cache.incr(MARKER), 2),
        (lambda: cache.set(MARKER, 5), 5),
        (lambda: cache.set_many({MARKER: 6}), 6),
    ]:
        write()
        assert cache.get_many_tracked([MARKER]) == {MARKER: expected}
    cache.delete(MARKER)
    assert cache.get_many_tracked([MARKER]) == {}
    assert cache.add(MARKER, 9)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 9}


@pytest.mark.parametrize("flush", ["flushdb", "flushall"])
def test_a_flush_drops_every_copy(redis_cache, flush):
    from django.core.cache import cache

    cache.set(MARKER, 3)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 3}
    getattr(other_client(), flush)()  # Redis pushes an invalidation with no key names: drop all
    assert cache.get_many_tracked([MARKER]) == {}


def test_a_lost_tracking_connection_drops_every_copy_and_tracking_comes_back(redis_cache):
    from django.core.cache import cache

    cache.set(MARKER, 1)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 1}
    tracked = cache._tracked
    tracking_id = tracked.connection.client_id if hasattr(tracked.connection, "client_id") else None
    killer = other_client()
    for client in killer.client_list():
        if "flags" in client and "t" in client["flags"] and (tracking_id is None or client["id"] == str(tracking_id)):
            killer.client_kill_filter(_id=client["id"])
    killer.incr(cache.make_key(MARKER))  # while no push could reach this process
    assert cache.get_many_tracked([MARKER]) == {MARKER: 2}  # not the held 1
    assert tracked.connection is None  # fell back to reading Redis
    assert cache.get_many_tracked([MARKER]) == {MARKER: 2}  # tracking again, from a new connection
    assert tracked.connection is not None
    before = command_calls("mget")
    assert cache.get_many_tracked([MARKER]) == {MARKER: 2}
    assert command_calls("mget") == before


def test_without_tracking_every_read_goes_to_redis(redis_cache, caplog):
    import redis
    from django.core.cache import cache

    from keys.cache import TrackedReads

    cache.set(MARKER, 4)
    with mock.patch.object(TrackedReads, "_track", return_value=False):
        before = command_calls("mget")
        assert cache.get_many_tracked([MARKER]) == {MARKER: 4}
        assert cache.get_many_tracked([MARKER]) == {MARKER: 4}
        assert command_calls("mget") == before + 2

    class Refusing(redis.Connection):  # a Redis that will not track (too old, or an ACL refusing CLIENT)
        def connect(self):
            raise redis.ConnectionError("refused")

    pool = cache._cache._get_connection_pool(write=True)
    fresh = TrackedReads(SimpleNamespace(connection_class=Refusing, connection_kwargs=pool.connection_kwargs), ["x:"])
    with caplog.at_level("WARNING"):
        for _ in range(3):  # each a retry of tracking, as every 5 s through an outage
            fresh.retry_at = 0.0
            assert fresh.get_many([cache.make_key(MARKER)], cache._cache.get_many) == {cache.make_key(MARKER): 4}
    assert caplog.text.count("tracking unavailable") == 1  # one warning per loss, not one per retry


def test_a_forked_child_tracks_on_its_own_connection(redis_cache):
    from django.core.cache import cache

    cache.set(MARKER, 1)
    assert cache.get_many_tracked([MARKER]) == {MARKER: 1}
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            held = cache.get_many_tracked([MARKER])  # not the parent's copy: read again, on its own connection
            other_client().incr(cache.make_key(MARKER))
            seen = cache.get_many_tracked([MARKER])
            own = cache._tracked.pid == os.getpid()
            os.write(writer, f"{held[MARKER]} {seen[MARKER]} {own}".encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(reader, 100).decode() == "1 2 True"
    assert cache.get_many_tracked([MARKER]) == {MARKER: 2}  # the parent got its push too


def test_a_real_server_on_redis_obeys_a_command_at_the_next_call_and_reads_nothing_when_warm(tmp_path):
    """gunicorn with 2 workers on Redis: warm allowed calls make no Redis read at all, and a
    deactivation through a command in another process is obeyed by every next call."""
    from tests import servers

    other_client().flushdb()
    server = servers.start(tmp_path, workers=2, extra_env={"CACHE_URL": REDIS_URL, "KEYS_THROTTLE_REFUSALS": "1000"})
    try:
        value = server.manage("create_api_key", "--description", "tracked", "--all", "--quiet")

        def calls(n=16):
            return {server.post("/chqapi/export/inventory", b"{}", {"ApiKey": value})[0] for _ in range(n)}

        assert calls() == {501}  # both workers have read and hold the marker
        reads = command_calls("mget") + command_calls("get")
        assert calls(40) == {501}
        assert command_calls("mget") + command_calls("get") == reads
        server.manage("update_api_key", value, "--deactivate")
        assert calls() == {401}
        server.manage("update_api_key", value, "--activate")
        assert calls() == {501}
        server.manage("remove_api_key", value, "--yes")
        assert calls() == {401}
    finally:
        server.stop()


# --- Redis losing its data (FLUSHALL, a restart without persistence, eviction) -----------------


def _change(kind: str, key):
    """Make the key's value (or its old value, for the grace changes) stop working; the value
    that worked before and must be refused after."""
    from django.utils import timezone

    from keys.services import api_key_end_grace, api_key_remove, api_key_roll

    if kind == "deactivate":
        api_key_change(key=key, is_active=False)
    elif kind == "remove":
        api_key_remove(key=key)
    elif kind == "roll":
        api_key_roll(key=key, grace_until=timezone.now())
    elif kind == "end grace":
        api_key_end_grace(key=key)
    else:
        raise AssertionError(kind)


def _lose_the_marker(how: str) -> None:
    from django.core.cache import cache

    if how == "flushall":  # also what a restart without persistence leaves
        other_client().flushall()
    else:  # an eviction: the one key gone, and Redis's invalidation push for it
        assert other_client().delete(cache.make_key(MARKER)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["flushall", "evicted"])
@pytest.mark.parametrize("kind", ["deactivate", "remove", "roll", "end grace"])
def test_a_change_made_before_redis_lost_its_data_is_obeyed_after(
    redis_cache, settings, migrated_data, make_key, inventory_export, kind, how
):
    """The marker re-created after a FLUSHALL (or an eviction) never repeats a value this
    process filled its decisions under, so the decisions held from before the change are dropped."""
    from datetime import timedelta

    from django.utils import timezone

    from keys.services import api_key_roll

    settings.KEYS_CHANGE_MARKER = settings.KEYS_SHARED_COUNTERS = "cache"  # as REDIS_URL sets them
    key = make_key(grants=[inventory_export.pk])
    value = key.value
    if kind == "end grace":  # the old value of a rolled key works until its grace is ended
        api_key_roll(key=key, grace_until=timezone.now() + timedelta(hours=1))
        key.refresh_from_db()
    other_client().flushall()  # start from an empty Redis, as the testers did
    assert all(decide(value, direction="export", api_id="inventory").allowed for _ in range(16))
    _change(kind, key)
    _lose_the_marker(how)
    answers = {decide(value, direction="export", api_id="inventory").reason for _ in range(12)}
    assert answers == {"unknown key" if kind != "deactivate" else "inactive key"}


def test_a_lost_marker_starts_again_above_every_value_it_had_and_never_expires(redis_cache, settings):
    from django.core.cache import cache

    from keys import freshness

    settings.KEYS_CHANGE_MARKER = "cache"
    first = freshness.current()
    for _ in range(3):
        freshness.advance()
    reached = freshness.current()
    assert reached == first + 3
    other_client().flushall()
    again = freshness.current()
    assert again > reached
    assert other_client().ttl(cache.make_key(MARKER)) == -1  # no TTL: nothing expires it
    other_client().flushall()
    freshness.advance()  # a change is the first to find it missing
    assert freshness.current() > again


def test_incr_or_start_never_creates_a_missing_key_as_one(redis_cache):
    from django.core.cache import cache

    assert cache.incr_or_start("counted", 1000) == 1001
    assert cache.incr_or_start("counted", 5000) == 1002
    assert other_client().ttl(cache.make_key("counted")) == -1
    assert cache.get("counted") == 1002


def test_a_real_server_obeys_changes_made_before_redis_lost_its_data(tmp_path):
    """The testers' report: empty Redis, calls with a key answered, the key changed through a
    command, then FLUSHALL; both gunicorn workers must refuse it at once, for each kind of change."""
    from tests import servers

    server = servers.start(tmp_path, workers=2, extra_env={"CACHE_URL": REDIS_URL, "KEYS_THROTTLE_REFUSALS": "1000"})
    try:
        values = {
            kind: server.manage("create_api_key", "--description", kind, "--all", "--quiet")
            for kind in ("deactivate", "remove", "roll", "end grace")
        }
        server.manage("roll_api_key", values["end grace"], "--grace", "1h", "--quiet")  # its old value works

        def answers(value, n):
            return {server.post("/chqapi/export/inventory", b"{}", {"ApiKey": value})[0] for _ in range(n)}

        other_client().flushall()
        assert {kind: answers(value, 16) for kind, value in values.items()} == {kind: {501} for kind in values}
        server.manage("update_api_key", values["deactivate"], "--deactivate")
        server.manage("remove_api_key", values["remove"], "--yes")
        server.manage("roll_api_key", values["roll"], "--grace", "now", "--quiet")
        server.manage("roll_api_key", values["end grace"], "--end-grace")
        other_client().flushall()
        assert {kind: answers(value, 12) for kind, value in values.items()} == {kind: {401} for kind in values}
    finally:
        server.stop()
