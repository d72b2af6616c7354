"""Django's Redis cache with one Redis client per connection pool.

Django's ``RedisCacheClient.get_client`` makes a new ``redis.Redis`` for every cache call, and
redis-py builds its table of reply callbacks (a few hundred entries) each time: about 0.35 ms
of CPU a call, twice on every participant request (the public rate limit's ``add`` and
``incr``), more than the calls themselves (benchmarks/README.md, survey submission). A client
is only a handle on its pool and is safe to share between threads, so one is kept per pool.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusedRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        # Reads may go to another server (a random one when there are several): one client
        # per pool, each made the first time its pool is.
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """``django.core.cache.backends.redis.RedisCache``, its client kept (see the module)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusedRedisCacheClient
