"""Django's Redis cache, keeping one client per connection pool.

Django 5.2's RedisCacheClient.get_client() builds a new redis.Redis object on
every cache operation, and redis-py copies its table of ~170 response
callbacks into each new one: measured at about a quarter of a millisecond per
operation (bench/profile_call.py), more than the round trip to Redis itself,
and the guard makes one or two such operations per API call. A redis.Redis
client is safe to share (it takes a connection from its pool per command), so
one per pool is enough.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


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
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient

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
