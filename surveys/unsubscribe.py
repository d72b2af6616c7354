"""The one-click unsubscribe link of invitation and reminder e-mails.

The link carries a signed participant id (no identifier, nothing guessable). Opening it shows a
button; pressing it (or a mail client's RFC 8058 one-click POST) stops e-mail invitations and
reminders at once. A GET alone changes nothing, so link scanners cannot unsubscribe people.
"""

from django.core import signing
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from surveys.models import Message, Participant
from surveys.reminders import assignments_locked, reminders_plan

SALT = "surveys.unsubscribe"


def unsubscribe_token(participant_id: int) -> str:
    return signing.dumps(participant_id, salt=SALT, compress=True)


@transaction.atomic
def email_opt_out(*, participant: Participant, now=None) -> int:
    """Stop e-mail invitations and reminders, and plan them again by text where the
    participant has a phone number (``reminders.channel_for``); returns how many queued
    e-mails were cancelled."""
    now = now or timezone.now()
    # The participant's row, then their assignments' (the order every path locks them in).
    list(Participant.objects.select_for_update(no_key=True).filter(pk=participant.pk))
    assignments = assignments_locked([participant.pk])
    changed = Participant.objects.filter(pk=participant.pk, email_opt_out_at__isnull=True).update(
        email_opt_out_at=now
    )
    cancelled = Message.objects.filter(
        assignment__participant=participant,
        channel=Message.Channel.EMAIL,
        status=Message.Status.QUEUED,
    ).update(status=Message.Status.CANCELLED, reason="opted out (unsubscribe link)", updated_at=now)
    if changed:  # pressed again: nothing more to plan
        reminders_plan(assignments=assignments, now=now)
    return cancelled


@never_cache
@csrf_exempt  # mail clients' one-click POST carries no CSRF token; the signed link is the key
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        participant_id = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise Http404 from exc
    participant = Participant.objects.filter(pk=participant_id).first()
    if participant is None:
        raise Http404
    done = request.method == "POST"
    if done:
        email_opt_out(participant=participant)
    with translation.override(participant.language):
        return render(request, "participant/unsubscribe.html", {"done": done})
