"""Participants' personal links: random tokens, stored hashed, that expire and can be revoked.

A token has 256 bits of randomness (``secrets.token_urlsafe(32)``); the database keeps its
SHA-256 only, so a copy of the database cannot open anyone's surveys. A plain hash (not a slow
password hash) is right here: the token is random, not something a person chose.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from surveys.models import Participant, ParticipantLink

TOKEN_BYTES = 32


class LinkNotFound(Exception):
    """No such link: a guessed or mistyped token (answered with 404)."""


class LinkExpired(Exception):
    """A real link that no longer opens anything: expired, revoked, or the participant is no
    longer taking part (answered with a friendly page offering a new link, in ``language``)."""

    def __init__(self, language: str = "en"):
        super().__init__(language)
        self.language = language


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def participant_link_url(token: str) -> str:
    return f"{settings.SITE_URL}/p/{token}"


@transaction.atomic
def participant_link_create(
    *, participant: Participant, now: datetime | None = None, days: int | None = None
) -> tuple[ParticipantLink, str]:
    """A new personal link; returns the row and the token (shown once, never stored)."""
    now = now or timezone.now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ParticipantLink.objects.create(
        participant=participant,
        token_hash=token_hash(token),
        created_at=now,
        expires_at=now + timedelta(days=days or settings.PARTICIPANT_LINK_DAYS),
    )
    return link, token


def participant_link_resolve(*, token: str, now: datetime | None = None) -> ParticipantLink:
    """The link a token opens, marked as used; raises LinkNotFound or LinkExpired."""
    now = now or timezone.now()
    if not token or len(token) > 100:
        raise LinkNotFound
    link = (
        ParticipantLink.objects.select_related("participant")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if link is None:
        raise LinkNotFound
    if (
        link.revoked_at is not None
        or link.expires_at <= now
        or link.participant.status != Participant.Status.ACTIVE
    ):
        raise LinkExpired(link.participant.language)
    ParticipantLink.objects.filter(pk=link.pk).update(last_used_at=now)
    link.last_used_at = now
    return link


def participant_links_revoke(
    *, participant: Participant, revoked_by=None, now: datetime | None = None
) -> int:
    """Stop every working link of a participant (a lost or shared phone); returns how many."""
    now = now or timezone.now()
    # Sessions those links started end too (the phone may be lost, or shared).
    Participant.objects.filter(pk=participant.pk).update(access_epoch=F("access_epoch") + 1)
    return ParticipantLink.objects.filter(
        participant=participant, revoked_at__isnull=True, expires_at__gt=now
    ).update(revoked_at=now, revoked_by=revoked_by)
