"""Outages of the database and of the shared state (keys/outages.py): every call is a
503 with Retry-After and a JSON Message, and the log holds one traceback per outage,
one short line per refused call, and one line when the outage is over."""

import logging
import os
import shutil
import subprocess
import time
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

from tests import api_calls, servers

REDIS_URL = os.environ.get("REDIS_TEST_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL or not shutil.which("redis-server"),
    reason="needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it), and redis-server",
)
EXPORT = "/chqapi/export/apidocument"


def post(value, path=EXPORT):
    return api_calls.post(path, value)


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info]


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "keys.outages"]


@pytest.fixture
def quick_retry(settings):
    settings.KEYS_RETRY_AFTER_SECONDS = 1  # also the quiet time that ends an outage


@pytest.fixture
def clock(monkeypatch):
    """The outages' clock, moved by the test: a slow machine must not end an outage early."""
    from keys import outages

    now = [1000.0]
    monkeypatch.setattr(outages, "monotonic", lambda: now[0])
    return now


def test_a_database_outage_is_503s_with_one_traceback_and_a_line_when_it_is_over(
    make_key, quick_retry, clock, caplog
):
    key = make_key(allowed_for_all=True)
    assert post(key.value).status_code == 200
    with (
        caplog.at_level(logging.INFO),
        mock.patch("keys.guard.flow.decide", side_effect=OperationalError("connection refused")),
    ):
        answers = [post(key.value) for _ in range(50)]
    assert {a.status_code for a in answers} == {503}
    assert {a["Retry-After"] for a in answers} == {"1"}
    assert {a.json()["Message"] for a in answers} == {
        "The service is unavailable for a moment (its database cannot be reached)."
    }
    [traceback] = tracebacks(caplog)  # the first failure's, and no other logger's either
    assert traceback.name == "keys.outages"
    assert "OperationalError: connection refused" in caplog.text
    lines = outage_lines(caplog)
    assert len(lines) == 50  # one per refused call
    assert lines[0] == f"API {EXPORT}: the database cannot be reached; calls are answered 503 until it is back"
    assert set(lines[1:]) == {f"API {EXPORT}: 503, the database still cannot be reached (OperationalError)"}

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert post(key.value).status_code == 200  # too soon to say it is over
        assert outage_lines(caplog) == []
        clock[0] += 1
        assert post(key.value).status_code == 200
    [back] = outage_lines(caplog)
    assert back.startswith("the database is back: no failure for 1 s; the outage lasted ")
    assert back.endswith(" s and 50 calls were answered 503")


def test_failures_closer_together_than_the_retry_time_are_one_outage(make_key, quick_retry, clock, caplog):
    key = make_key(allowed_for_all=True)
    down = mock.patch("keys.guard.flow.decide", side_effect=OperationalError("flapping"))
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            with down:
                assert post(key.value).status_code == 503
            clock[0] += 0.9
            assert post(key.value).status_code == 200
        assert len(tracebacks(caplog)) == 1
        clock[0] += 0.1
        assert post(key.value).status_code == 200  # the quiet time has passed: over
        with down:
            assert post(key.value).status_code == 503  # a new outage
    assert len(tracebacks(caplog)) == 2
    assert sum(line.startswith("the database is back") for line in outage_lines(caplog)) == 1


def test_a_database_outage_in_the_status_call_and_outside_the_guard_is_logged_the_same_way(
    make_key, quick_retry, caplog
):
    key = make_key(allowed_for_all=True)
    with (
        caplog.at_level(logging.INFO),
        mock.patch("keys.guard.flow.authenticate", side_effect=OperationalError("down")),
    ):
        assert {post(key.value, "/chqapi/status").status_code for _ in range(5)} == {503}
    with (
        caplog.at_level(logging.INFO),
        mock.patch("keys.guard.flow.guarded_call", side_effect=OperationalError("down")),
    ):
        assert {post(key.value).status_code for _ in range(5)} == {503}
    assert len(tracebacks(caplog)) == 1  # one outage of the database, whichever door it showed at
    assert len(outage_lines(caplog)) == 10


# --- the shared state: a real Redis stopped and started again -----------------------------------


class ScratchRedis:
    """A Redis server of this test's own, on its own port, to stop and start mid-test."""

    def __init__(self) -> None:
        self.port = servers.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def scratch_redis():
    server = ScratchRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_scratch_redis(scratch_redis, settings, quick_retry):
    caches = {"default": {"BACKEND": "keys.cache.RedisCache", "LOCATION": scratch_redis.url}}
    with override_settings(CACHES=caches):  # Django drops its cache connections (django.test.signals)
        settings.KEYS_CHANGE_MARKER = settings.KEYS_SHARED_COUNTERS = "cache"  # as REDIS_URL sets them
        settings.KEYS_DECISION_CACHE = True
        yield scratch_redis


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_redis_stopped_is_503s_with_one_traceback_and_a_line_when_it_is_back(
    on_scratch_redis, migrated_data, make_key, caplog
):
    import redis

    from keys.services import api_key_change

    key, deactivated = make_key(allowed_for_all=True), make_key(allowed_for_all=True)
    redis.Redis.from_url(on_scratch_redis.url).flushall()  # the calls start from an empty Redis
    assert post(key.value).status_code == 200  # the marker and the block held by this process
    assert post(deactivated.value).status_code == 200
    assert post("not-a-key").status_code == 401  # a refusal counted in Redis
    api_key_change(key=deactivated, is_active=False)  # and no call sees it before Redis goes
    on_scratch_redis.stop()
    with caplog.at_level(logging.INFO):
        answers = [post(key.value) for _ in range(30)] + [post("not-a-key") for _ in range(10)]
        answers += [post(key.value, "/chqapi/status") for _ in range(5)]
    assert {a.status_code for a in answers} == {503}
    assert {a["Retry-After"] for a in answers} == {"1"}
    assert {a.json()["Message"] for a in answers} == {
        "The service is unavailable for a moment (its shared state cannot be reached)."
    }
    [traceback] = tracebacks(caplog)
    assert traceback.name == "keys.outages"
    assert "redis.exceptions.ConnectionError" in caplog.text
    lines = outage_lines(caplog)
    assert len(lines) == 45
    assert lines[0].endswith("the shared state (Redis) cannot be reached; calls are answered 503 until it is back")
    assert all("503, the shared state (Redis) still cannot be reached (ConnectionError)" in x for x in lines[1:])

    caplog.clear()
    on_scratch_redis.start()  # empty, as after a restart without persistence
    time.sleep(1.1)
    with caplog.at_level(logging.INFO):
        assert post(key.value).status_code == 200
        assert post("not-a-key").status_code == 401
        assert post(deactivated.value).status_code == 401  # the marker came back as a value never seen
    [back] = outage_lines(caplog)
    assert back.startswith("the shared state (Redis) is back")
    assert back.endswith("45 calls were answered 503")
    assert tracebacks(caplog) == []


@needs_redis
def test_a_real_server_answers_503_while_its_redis_is_stopped_and_logs_one_traceback_per_worker(
    tmp_path, scratch_redis
):
    env = {"CACHE_URL": scratch_redis.url, "KEYS_THROTTLE_REFUSALS": "1000", "KEYS_RETRY_AFTER_SECONDS": "1"}
    server = servers.start(tmp_path, workers=2, extra_env=env)
    try:
        value = server.manage("create_api_key", "--description", "outage", "--all", "--quiet")

        def answers(n):
            return [server.post("/chqapi/export/inventory", b"{}", {"ApiKey": value}) for _ in range(n)]

        assert {status for status, _, _ in answers(8)} == {501}
        scratch_redis.stop()
        down = answers(40)
        assert {status for status, _, _ in down} == {503}
        assert {headers["Retry-After"] for _, _, headers in down} == {"1"}
        assert {b'"Message"' in body for _, body, _ in down} == {True}
        scratch_redis.start()
        time.sleep(1.1)
        assert {status for status, _, _ in answers(8)} == {501}
    finally:
        server.stop()
    log = (tmp_path / "gunicorn.log").read_text()
    # Each worker logs the outage it saw begin, with its traceback (redis-py chains three exceptions).
    starts = log.count("calls are answered 503 until it is back")
    assert 1 <= starts <= 2
    assert log.count("Traceback (most recent call last)") == 3 * starts
    assert log.count("cannot be reached") == 40  # one line per refused call
    assert 1 <= log.count("the shared state (Redis) is back") <= 2


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_refusal_redis_cannot_count_is_a_503_not_an_uncounted_refusal(on_scratch_redis, migrated_data, make_key):
    """Redis out of memory refuses writes and still answers reads: an allowed call goes through,
    but a refused key whose count the throttle cannot store is not answered as if it were counted."""
    import redis

    key = make_key(allowed_for_all=True)
    assert post(key.value).status_code == 200
    admin = redis.Redis.from_url(on_scratch_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)  # every write is refused with OOM from now on
    try:
        assert post(key.value).status_code == 200
        refused = post("not-a-key")
        assert refused.status_code == 503
        assert refused["Retry-After"] == "1"
    finally:
        admin.config_set("maxmemory", 0)
    assert post("not-a-key").status_code == 401
