"""Opting out of text messages and back in, by phone number (an inbound STOP or START reply).

The number is matched through the keyed digest of ParticipantContact.phone (never decrypted,
never logged): everyone enrolled with that number is affected, in every study.
"""

from datetime import datetime

from django.db import transaction

from surveys.fields import contact_lookup
from surveys.models import Message, Participant, ParticipantContact
from surveys.reminders import assignments_locked, reminders_plan

# The reason queued texts carry once cancelled by a STOP reply.
OPTED_OUT_REASON = "opted out (STOP)"


def _participants_with_phone(phone: str):
    """Everyone enrolled with this number, their rows locked in pk order (as every other
    path that locks several participants does: no deadlock between them)."""
    lookup = contact_lookup("phone", phone)
    if not lookup:
        # An unusable number has digest "", which is also every contact row without a phone.
        return Participant.objects.none()
    pks = list(
        Participant.objects.select_for_update(no_key=True)
        .filter(
            pk__in=ParticipantContact.objects.filter(phone_lookup=lookup).values("participant_id")
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return Participant.objects.filter(pk__in=pks)


@transaction.atomic
def sms_opt_out(*, phone: str, now: datetime) -> int:
    """Stop texts to everyone with this number: mark them opted out (keeping an earlier
    opt-out's time), cancel their queued texts and plan their messages again (by e-mail where
    they have an address). Returns how many participants were newly opted out; their queued
    texts are cancelled either way."""
    participants = _participants_with_phone(phone)
    assignments = assignments_locked(participants)
    changed = participants.filter(sms_opt_out_at__isnull=True).update(
        sms_opt_out_at=now, updated_at=now
    )
    Message.objects.filter(
        assignment__participant__in=participants,
        channel=Message.Channel.SMS,
        status=Message.Status.QUEUED,
    ).update(status=Message.Status.CANCELLED, reason=OPTED_OUT_REASON, updated_at=now)
    if changed:  # a STOP repeated changes nothing more
        reminders_plan(assignments=assignments, now=now)
    return changed


@transaction.atomic
def sms_opt_in(*, phone: str, now: datetime) -> int:
    """Resume texts to everyone with this number (a START reply): their messages from now on
    are planned again, on texts where those are preferred (texts cancelled by the opt-out stay
    cancelled; of the moments already past, at most the latest within a day is sent, as any
    re-plan does). Returns how many participants were opted out before."""
    participants = _participants_with_phone(phone)
    assignments = assignments_locked(participants)
    changed = participants.filter(sms_opt_out_at__isnull=False).update(
        sms_opt_out_at=None, updated_at=now
    )
    if changed:
        reminders_plan(assignments=assignments, now=now)
    return changed
