"""Fixed-window attempt counters in the cache (Redis in production), for what anyone can reach:
"send me a new link", the PIN screen, personal links, and every public path as a whole
(``PublicRateLimitMiddleware``)."""

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


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


def over_limit(scope: str, key: str, *, limit: int) -> bool:
    """Whether ``key`` already made more than ``limit`` attempts in the current window (counts
    nothing)."""
    digest = hashlib.sha256(f"{scope}:{key}".encode()).hexdigest()
    return (cache.get(f"attempts:{scope}:{digest}") or 0) > limit


# Every address anyone can reach without a staff sign-in: participants' pages and API, and the
# SMS provider's callbacks.
PUBLIC_PREFIXES = ("/p/", "/api/v1/participant/", "/hooks/")
RETRY_AFTER_SECONDS = 60


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
            and attempt_over_limit(
                "public-requests", client_ip(request), limit=limit, window=RETRY_AFTER_SECONDS
            )
        ):
            return too_many_requests(request)
        return self.get_response(request)


def too_many_requests(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": "Too many requests from this address; try again in a minute."},
            status=429,
        )
    else:
        response = render(request, "participant/too_many.html", status=429)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
