"""Staff sign-in lockout: after ``SIGNIN_FAILURES_PER_ACCOUNT`` failed sign-ins to one account, or
``SIGNIN_FAILURES_PER_ADDRESS`` from one address, within ``SIGNIN_LOCK_MINUTES``, sign-ins to
that account (from that address) are refused until the window has passed, even with the right
password. Counted in the cache (Redis in production), keyed by a hash of the name or address.

Failures are counted by the ``user_login_failed`` signal (``surveys.audit``), which every
authentication path sends; the refusal sits in the authentication backend
(``LockoutModelBackend``), so no sign-in path escapes it, and the admin's sign-in form says in
words why it refused.

Staff sessions expire (``StaffSessionExpiryMiddleware``): after ``STAFF_SESSION_IDLE_MINUTES``
without a request, and ``STAFF_SESSION_MAX_HOURS`` after sign-in.
"""

import hashlib
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout
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
            from surveys.two_factor import two_factor_on  # models are ready by now

            # With two-factor sign-in on, the count starts again only after the right code
            # (LockoutAuthenticationForm): a right password with wrong codes still locks.
            if two_factor_on(user) is None:
                signin_success(username=username or "")
        return user

    def get_user(self, user_id):
        """The session's user, as Django's backend loads it, with the two-factor state read in
        the same statement (``user_with_two_factor_state``)."""
        from surveys.two_factor import user_with_two_factor_state  # models are ready by now

        user = user_with_two_factor_state(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, which says so when the refusal is a lockout, and asks for the
    authenticator app's code of staff who turned on two-factor sign-in."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Enter a correct username and password for a staff account and, if "
        "you use two-factor sign-in, the current code of your authenticator app (each code "
        "works once).",
    }

    code = forms.CharField(
        label="Code from your authenticator app",
        required=False,
        max_length=12,
        help_text="Only if you turned on two-factor sign-in.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self):
        try:
            cleaned = super().clean()
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
        # No user when the username or password was left empty: the fields' own "required"
        # errors say so, and there is no second factor to check.
        user = self.get_user()
        if user is not None:
            self._second_factor_check(user)
        return cleaned

    def _second_factor_check(self, user) -> None:
        """With two-factor sign-in on, the password alone is not enough: a wrong or missing
        code counts as a failed sign-in (towards the lockout, and audited)."""
        from surveys.two_factor import two_factor_verify  # models are ready by now

        verified = two_factor_verify(user=user, code=self.cleaned_data.get("code") or "")
        username = user.get_username()
        if verified is None:  # not on for this user
            return
        if verified:
            signin_success(username=username)
            from surveys.two_factor import session_passed

            session_passed(self.request)  # kept through login()'s new session key
            return
        signin_failure_record(username=username, ip=client_ip(self.request))
        from surveys.audit import audit_log
        from surveys.models import AuditEvent

        audit_log(
            action=AuditEvent.Action.LOGIN_FAILED,
            user=user,
            request=self.request,
            details={"reason": "two-factor code"},
        )
        # The same words as a wrong password: a password guesser learns nothing from them.
        raise ValidationError(self.error_messages["invalid_login"], code="invalid_login")


# --- Staff session expiry ---------------------------------------------------------------------

SIGNED_IN_AT = "staff_signed_in_at"
SEEN_AT = "staff_seen_at"
_SEEN_EVERY = 60  # seconds: the session is written at most once a minute for being used


def session_started(sender, request, user, **kwargs) -> None:
    """``user_logged_in``: the session's clocks start at sign-in."""
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[SIGNED_IN_AT] = now
        request.session[SEEN_AT] = now


def session_expired(session, *, now: int | None = None) -> str:
    """Why a signed-in staff session is over ("idle", "too long"), or "" while it is not."""
    now = int(time.time()) if now is None else now
    seen = session.get(SEEN_AT)
    started = session.get(SIGNED_IN_AT)
    if seen is not None and now - seen > settings.STAFF_SESSION_IDLE_MINUTES * 60:
        return "idle"
    if started is not None and now - started > settings.STAFF_SESSION_MAX_HOURS * 3600:
        return "too long"
    return ""


class StaffSessionExpiryMiddleware:
    """A staff session ends after ``STAFF_SESSION_IDLE_MINUTES`` without a request, and
    ``STAFF_SESSION_MAX_HOURS`` after sign-in however busy: the user is signed out (audited as
    a sign-out, with the reason) and the page asks them to sign in again. Participants' sessions
    are not staff sessions and are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = int(time.time())
            session = request.session
            if SIGNED_IN_AT not in session:  # signed in before this rule existed
                session[SIGNED_IN_AT] = now
            reason = session_expired(session, now=now)
            if reason:
                request.session_expired = reason
                logout(request)  # request.user is now anonymous: the view asks for sign-in
            elif now - session.get(SEEN_AT, 0) >= _SEEN_EVERY:
                session[SEEN_AT] = now
        return self.get_response(request)
