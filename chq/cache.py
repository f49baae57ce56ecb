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
