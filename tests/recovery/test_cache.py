"""The Redis cache keeps one client per connection pool (recovery/cache.py) and still behaves
as Django's: values round-trip, counters count, and a server restart is survived."""

import threading
import uuid

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches

pytestmark = pytest.mark.skipif(
    not getattr(django_settings, "REDIS_URL", ""), reason="needs Redis (CI sets REDIS_URL)"
)


@pytest.fixture
def redis_cache(settings):
    # Keys of this test's own (never a FLUSHDB: the broker may share the database).
    settings.CACHES = {
        "default": {
            "BACKEND": "recovery.cache.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        },
    }
    return caches["default"]


def test_one_client_serves_every_call_and_values_still_round_trip(redis_cache):
    client = redis_cache._cache.get_client()
    assert redis_cache._cache.get_client(write=True) is client
    assert redis_cache.add("attempts", 1, timeout=60)
    assert not redis_cache.add("attempts", 5, timeout=60)
    assert redis_cache.incr("attempts") == 2
    redis_cache.set("answers", {"craving": 3}, timeout=60)
    assert redis_cache.get("answers") == {"craving": 3}


def test_threads_share_the_client_safely(redis_cache):
    redis_cache.set("counter", 0, timeout=60)
    backend = redis_cache._cache  # one per thread in Django; shared here on purpose

    def count():
        for _ in range(200):
            backend.incr(redis_cache.make_and_validate_key("counter"), 1)

    workers = [threading.Thread(target=count) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert redis_cache.get("counter") == 800


def test_a_dropped_connection_is_made_again(redis_cache):
    redis_cache.set("kept", 1, timeout=60)
    client = redis_cache._cache.get_client()
    client.connection_pool.disconnect()  # as after a Redis restart
    assert redis_cache.get("kept") == 1
