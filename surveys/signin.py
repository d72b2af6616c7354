"""Staff sign-in lockout: after ``SIGNIN_FAILURES_PER_ACCOUNT`` failed sign-ins to one account, or
``SIGNIN_FAILURES_PER_ADDRESS`` from one address, within ``SIGNIN_LOCK_MINUTES``, sign-ins to
that account (from that address) are refused until the window has passed, even with the right
password. Counted in the cache (Redis in production), keyed by a hash of the name or address.

Failures are counted by the ``user_login_failed`` signal (``surveys.audit``), which every
authentication path sends; the refusal sits in the authentication backend
(``LockoutModelBackend``), so no sign-in path escapes it, and the admin's sign-in form says in
words why it refused.
"""

import hashlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError

from surveys.ratelimit import client_ip


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(f"signin:{kind}:{value}".encode()).hexdigest()
    return f"signin-failures:{kind}:{digest}"


def _keys(*, username: str, ip: str) -> list[tuple[str, int]]:
    keys = []
    if username:
        limit = settings.SIGNIN_FAILURES_PER_ACCOUNT
        keys.append((_key("account", username.strip().lower()), limit))
    if ip:
        keys.append((_key("address", ip), settings.SIGNIN_FAILURES_PER_ADDRESS))
    return keys


def signin_failure_record(*, username: str, ip: str) -> None:
    """Count one failed sign-in against the account and the address (fixed windows)."""
    window = settings.SIGNIN_LOCK_MINUTES * 60
    for key, _ in _keys(username=username, ip=ip):
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add() and incr()
                cache.set(key, 1, timeout=window)


def signin_locked(*, username: str, ip: str) -> bool:
    """True while the account or the address has used up its failed sign-ins."""
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(username=username, ip=ip))


def signin_success(*, username: str) -> None:
    """A right password, not locked: the account's count starts again (the address's does not,
    so one account cannot be used to reset the guessing of others)."""
    cache.delete(_key("account", username.strip().lower()))


class LockoutModelBackend(ModelBackend):
    """Django's backend, refusing every sign-in to a locked account or from a locked address.
    ``PermissionDenied`` stops Django from trying any other backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        ip = client_ip(request) if request is not None else ""
        if signin_locked(username=username or "", ip=ip):
            raise PermissionDenied("locked")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            signin_success(username=username or "")
        return user


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, which says so when the refusal is a lockout."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            username = self.cleaned_data.get("username") or ""
            if signin_locked(username=username, ip=client_ip(self.request)):
                raise ValidationError(
                    "Too many failed sign-ins: this account (or this network) is locked for "
                    f"{settings.SIGNIN_LOCK_MINUTES} minutes. Try again later, or ask your "
                    "study's principal investigator to reset your password.",
                    code="locked",
                ) from None
            raise
