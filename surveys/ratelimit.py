"""Fixed-window attempt counters in the cache (Redis in production), for the participant
pages that anyone can reach: "send me a new link" and the PIN screen."""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind ``DJANGO_NUM_PROXIES`` trusted reverse proxies, the entry
    the outermost proxy appended to X-Forwarded-For (entries further left can be forged)."""
    proxies = settings.NUM_PROXIES
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def attempt_over_limit(scope: str, key: str, *, limit: int, window: int) -> bool:
    """Count one attempt for ``key``; True once more than ``limit`` were made in the window.

    Keys are hashed: a typed phone number or an address never sits in the cache in clear.
    """
    digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
    cache_key = f"attempts:{scope}:{digest}"
    if cache.add(cache_key, 1, timeout=window):
        return limit < 1
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add() and incr()
        cache.set(cache_key, 1, timeout=window)
        count = 1
    return count > limit
