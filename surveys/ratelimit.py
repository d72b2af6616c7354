"""Fixed-window attempt counters in the cache (Redis in production), for what anyone can reach:
"send me a new link", the PIN screen, personal links, and every public path as a whole
(``PublicRateLimitMiddleware``)."""

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


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


# Every address a participant's phone reaches without a staff sign-in: their pages and API. (The
# SMS provider's callbacks are left out: they are signed, come from the provider's few shared
# addresses, and a refused STOP would be lost.)
PUBLIC_PREFIXES = ("/p/", "/api/v1/participant/")
RETRY_AFTER_SECONDS = 60


def counted_over_limit(scope: str, key: str, *, limit: int, window: int) -> bool:
    """``attempt_over_limit``, failing open: with the cache (Redis) down, the request goes on
    (logged) rather than every participant page answering 500."""
    try:
        return attempt_over_limit(scope, key, limit=limit, window=window)
    except Exception:
        logger.warning("rate limit %s not counted: the cache is unreachable", scope)
        return False


class PublicRateLimitMiddleware:
    """At most ``PARTICIPANT_REQUESTS_PER_MINUTE`` requests a minute from one address to the
    public paths; beyond, 429 with Retry-After (a page for people, JSON for the API). Generous,
    since a clinic's Wi-Fi or a mobile carrier puts many phones behind one address: it stops
    floods and scripted guessing, not people. 0 turns it off."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.PARTICIPANT_REQUESTS_PER_MINUTE
        if (
            limit
            and request.path.startswith(PUBLIC_PREFIXES)
            and counted_over_limit(
                "public-requests", client_ip(request), limit=limit, window=RETRY_AFTER_SECONDS
            )
        ):
            return too_many_requests(request)
        return self.get_response(request)


def too_many_requests(
    request: HttpRequest, *, retry_after: int = RETRY_AFTER_SECONDS
) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": "Too many requests from this address; try again later."}, status=429
        )
    else:
        minutes = max(1, retry_after // 60)
        response = render(request, "participant/too_many.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(retry_after)
    return response
