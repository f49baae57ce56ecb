"""Django's Redis cache, keeping one client per connection pool.

Django 5.2's RedisCacheClient.get_client() builds a new redis.Redis object on
every cache operation, and redis-py copies its table of ~170 response
callbacks into each new one: measured at about a quarter of a millisecond per
operation (bench/profile_call.py), more than the round trip to Redis itself,
and the guard makes one or two such operations per API call. A redis.Redis
client is safe to share (it takes a connection from its pool per command), so
one per pool is enough.
"""

import logging
import math
import os
import threading
import time

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

log = logging.getLogger("keys.security")


class ReusedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    # Keys whose reads a process may hold (TrackedReads): the decisions' change marker and
    # the throttle's blocks, read by every guarded call.
    TRACKED_PREFIXES = ("keys:decision:", "keys:throttle:block:")

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient
        self._tracked: TrackedReads | None = None
        self._take_scripts: dict[int, object] = {}

    # Writes through this process drop its own copy at once: Redis's push to this process's
    # tracking connection may land a moment after the write's reply.
    def _forget(self, names, version=None) -> None:
        if self._tracked is not None:
            self._tracked.forget([self.make_and_validate_key(name, version=version) for name in names])

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        super().set(key, value, timeout, version)
        self._forget([key], version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        added = super().add(key, value, timeout, version)
        self._forget([key], version)
        return added

    def incr(self, key, delta=1, version=None):
        value = super().incr(key, delta, version)
        self._forget([key], version)
        return value

    def incr_or_start(self, key, start: int, version=None) -> int:
        """Add one, or when the key is missing set it to `start` + 1 (never expiring), in one
        MULTI that Redis runs whole. Django's incr() asks EXISTS, then sends INCR: a key lost
        in between (a flush, an eviction) would be created by INCR as 1, a value readers may
        have seen before (keys/freshness.py)."""
        name = self.make_and_validate_key(key, version=version)
        pipeline = self._cache.get_client(write=True).pipeline(transaction=True)
        pipeline.set(name, start, nx=True)
        pipeline.incr(name)
        value = pipeline.execute()[1]
        self._forget([key], version)
        return value

    def delete(self, key, version=None):
        deleted = super().delete(key, version)
        self._forget([key], version)
        return deleted

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        failed = super().set_many(data, timeout, version)
        self._forget(list(data), version)
        return failed

    def delete_many(self, keys, version=None):
        super().delete_many(keys, version)
        self._forget(list(keys), version)

    def clear(self):
        super().clear()
        if self._tracked is not None:
            self._tracked.forget(None)

    def get_many_tracked(self, names: list[str]) -> dict[str, object]:
        """get_many(), answered from this process's copies while Redis says they are current."""
        if self._tracked is None:
            prefixes = [self.make_key(prefix) for prefix in self.TRACKED_PREFIXES]
            # The primary's pool, where every write lands (and so every push starts).
            self._tracked = TrackedReads(self._cache._get_connection_pool(write=True), prefixes)
        keys = {self.make_and_validate_key(name): name for name in names}
        found = self._tracked.get_many(list(keys), self._cache.get_many)
        return {keys[key]: value for key, value in found.items()}

    def incr_counters(self, counters: list[tuple[str, int | None]]) -> list[int]:
        """Add one to each counter, one round trip for all of them (a pipeline of INCR
        and TTL), where Django's add() then incr() costs two round trips a counter. A
        counter made here expires `window` seconds after its first count (None: never),
        as add(name, 1, timeout=window) would; that EXPIRE is a second round trip, once
        a window. Django stores integers as Redis integers, so get() reads these too."""
        keys = [self.make_and_validate_key(name) for name, _ in counters]
        client = self._cache.get_client(write=True)
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.incr(key)
            pipeline.ttl(key)
        replies = pipeline.execute()
        values, ttls = replies[0::2], replies[1::2]
        fresh = [
            (key, window) for key, (_, window), ttl in zip(keys, counters, ttls, strict=True) if window and ttl == -1
        ]
        if fresh:
            pipeline = client.pipeline(transaction=False)
            for key, window in fresh:
                pipeline.expire(key, window)
            pipeline.execute()
        return [int(v) for v in values]

    # take() of keys/shared.py: every counter is read first, and only if none is full (nor, when
    # it must exist, absent) are they all counted; Redis runs a script whole, so no other call
    # counts in between. ARGV: per counter its limit, its seconds to live, 1 if it must exist;
    # then take()'s `most` and LEASE_SHARE (keys.shared.granted(), the same rule).
    # Seconds to live, not a moment: the windows are this host's clock's, whatever Redis's says.
    TAKE_SCRIPT = """
    local values = {}
    for i, key in ipairs(KEYS) do
      local value = redis.call('GET', key)
      if not value and ARGV[3 * i] == '1' then return {i - 1, 1, {}} end
      values[i] = tonumber(value or 0)
    end
    local room = nil
    for i = 1, #KEYS do
      local left = tonumber(ARGV[3 * i - 2]) - values[i]
      if left <= 0 then return {i - 1, 0, values} end
      if room == nil or left < room then room = left end
    end
    local most, share = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
    local granted = math.max(1, math.min(most, math.floor(room / share)))
    for i, key in ipairs(KEYS) do
      if redis.call('INCRBY', key, granted) == granted then redis.call('EXPIRE', key, ARGV[3 * i - 1]) end
    end
    return {-1, 0, values, granted}
    """

    def take_counters(
        self, counters: list[tuple[str, int, float, bool]], most: int = 1
    ) -> tuple[int | None, bool, list[int], int]:
        """keys.shared.take() in one round trip (EVALSHA of TAKE_SCRIPT)."""
        from keys.shared import LEASE_SHARE  # here: keys.shared imports the cache this module provides

        client = self._cache.get_client(write=True)
        script = self._take_scripts.get(id(client))
        if script is None:
            script = self._take_scripts[id(client)] = client.register_script(self.TAKE_SCRIPT)
        keys = [self.make_and_validate_key(name) for name, *_ in counters]
        args, now = [], time.time()
        for _, limit, expires, must_exist in counters:
            args += [limit, max(1, math.ceil(expires - now)), 1 if must_exist else 0]
        refused, unseeded, values, *granted = script(keys=keys, args=[*args, most, LEASE_SHARE])
        return (None if refused < 0 else refused), bool(unseeded), [int(v) for v in values], int(sum(granted))


# --- reads kept by Redis's invalidation pushes -------------------------------------------


class TrackedReads:
    """This process's copy of a few Redis keys, right for as long as Redis says so.

    A guarded call reads the decision's change marker (and whether its client is
    blocked) before anything else; in Redis that was one round trip per call, the
    largest part of a warm allowed call (bench/verify.py). Redis's server-assisted
    client-side caching removes it: one connection per process, in RESP3, asks
    Redis for CLIENT TRACKING in broadcast mode on the key prefixes it copies, and
    Redis pushes an "invalidate" on that same connection whenever such a key is
    written, deleted or flushed, by any client on any host. Each read first takes
    whatever pushes have arrived (a poll of the socket, no round trip) and forgets
    those keys; a key it does not hold is read from Redis, then held.

    Why this is never stale: Redis queues the push to every tracking connection
    while it carries out the write, before the writer gets its reply, so the push
    is on its way before the change is reported done; a value read before a push
    arrives is dropped when it does. Tracking is turned on before any value is read.
    If the connection fails, or tracking cannot be turned on (an old Redis, an ACL
    that refuses CLIENT), every copy is dropped and reads go to Redis each time
    until a new connection is tracking again.
    """

    MAX_KEYS = 10_000

    def __init__(self, pool, prefixes: list[str]):
        self.pool, self.prefixes = pool, prefixes
        self.lock = threading.Lock()
        self.values: dict[str, object] = {}
        self.connection = None
        self.pid = None
        self.retry_at = 0.0
        self.warned = False  # since tracking was last on: one warning per loss, not one per retry

    def _track(self) -> bool:
        """A tracking connection for this process; False while none can be had."""
        if self.connection is not None and self.pid == os.getpid():
            return True
        self.values.clear()
        if self.connection is not None:  # a parent's, after a fork: close this process's copy of it
            self.connection.disconnect()  # (redis-py leaves the parent's socket open)
        self.connection = None
        if time.monotonic() < self.retry_at:
            return False
        connection = self.pool.connection_class(**{**self.pool.connection_kwargs, "protocol": 3})
        try:
            connection.connect()
            connection._parser.set_invalidation_push_handler(self._invalidated)
            arguments = ["CLIENT", "TRACKING", "on", "BCAST"]
            for prefix in self.prefixes:
                arguments += ["PREFIX", prefix]
            connection.send_command(*arguments)
            if connection.read_response() not in (b"OK", "OK"):
                raise redis.RedisError("CLIENT TRACKING was refused")
        except (redis.RedisError, OSError) as exc:
            connection.disconnect()
            self.retry_at = time.monotonic() + 5
            if not self.warned:
                self.warned = True
                log.warning("Redis client-side tracking unavailable (%s); reading from Redis on every call", exc)
            return False
        self.connection, self.pid, self.warned = connection, os.getpid(), False
        return True

    def _invalidated(self, push) -> None:
        keys = push[1]
        if keys is None:  # FLUSHDB / FLUSHALL
            self.values.clear()
            return
        for key in keys:
            self.values.pop(key.decode() if isinstance(key, bytes) else key, None)

    def forget(self, keys: list[str] | None) -> None:
        """Drop these copies (None: all)."""
        with self.lock:
            if keys is None:
                self.values.clear()
            for key in keys or ():
                self.values.pop(key, None)

    def _drain(self) -> bool:
        """Take every push that has arrived; False (and every copy dropped) if the connection failed."""
        try:
            while self.connection.can_read(0):
                self.connection.read_response(push_request=True)
            return True
        except (redis.RedisError, OSError):
            self.connection.disconnect()
            self.connection = None
            self.values.clear()
            return False

    def get_many(self, keys: list[str], read) -> dict[str, object]:
        """The values of `keys` (full Redis key names); `read(missing)` reads those not held."""
        with self.lock:
            if not (self._track() and self._drain()):
                return read(keys)
            missing = [k for k in keys if k not in self.values]
            if missing:
                found = read(missing)
                if len(self.values) + len(missing) > self.MAX_KEYS:
                    self.values.clear()
                for key in missing:
                    self.values[key] = found.get(key)
            return {k: self.values[k] for k in keys if self.values[k] is not None}
