"""Staff API tokens: made with a random key shown once, stored as a SHA-256 hash."""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from surveys.models import StaffApiToken

TOKEN_BYTES = 32
DEFAULT_DAYS = 90
MAX_DAYS = 366
# What a key may do (``api_scope`` of each API view, api/auth.py); always within what its
# owner's roles allow.
SCOPES = {
    "read": "Read studies, data dictionaries and retention summaries",
    "contacts": "Read the call list, with participants' phone numbers",
    "write": "Enrol participants, enter answers, import data dictionaries",
    "export": "Export datasets and download background exports",
}
DEFAULT_SCOPES = ("read",)


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def staff_token_create(
    *,
    user,
    name: str,
    days: int = DEFAULT_DAYS,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    now: datetime | None = None,
) -> tuple[StaffApiToken, str]:
    """A new token for ``user`` that may do ``scopes``; returns the row and the key (shown
    once, never stored)."""
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise ValidationError(
            {"scopes": f"Choose one or more of {', '.join(SCOPES)}; not {', '.join(unknown)}."}
            if unknown
            else {"scopes": "Choose at least one scope."}
        )
    now = now or timezone.now()
    days = max(1, min(days, MAX_DAYS))
    key = secrets.token_urlsafe(TOKEN_BYTES)
    token = StaffApiToken.objects.create(
        user=user,
        name=name.strip() or "API token",
        prefix=key[:8],
        key_hash=token_digest(key),
        scopes=" ".join(scopes),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    return token, key


def staff_token_revoke(*, token: StaffApiToken, now: datetime | None = None) -> None:
    StaffApiToken.objects.filter(pk=token.pk, revoked_at=None).update(
        revoked_at=now or timezone.now()
    )


def staff_token_find(*, key: str, now: datetime | None = None) -> StaffApiToken | None:
    """The live token of a key (its ``user`` active staff), or None (unknown, expired or
    revoked key, inactive user). Marks the token as used, at most once a minute."""
    now = now or timezone.now()
    token = (
        StaffApiToken.objects.select_related("user")
        .filter(key_hash=token_digest(key), revoked_at=None, expires_at__gt=now)
        .first()
    )
    if token is None or not token.user.is_active or not token.user.is_staff:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        StaffApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
