"""How participants get back in: a new personal link on request, and an optional PIN.

"Send me a new link": the participant types the e-mail address or mobile number the study has
for them. The page gives the same answer whether or not it matched, and the lookup and sending
happen in a Celery task that receives only the keyed digest (never the typed value), so neither
the reply nor its timing tells a stranger who takes part in the study. Attempts are counted per
client address and per typed contact.

The PIN (4–6 digits, for a shared phone) is stored as a password hash. After
``PIN_MAX_FAILURES`` wrong tries in a row the PIN screen refuses tries for ``PIN_LOCK_MINUTES``;
a coordinator can remove a forgotten PIN in the admin.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from surveys.fields import ascii_digits, contact_lookup, phone_normalise
from surveys.links import participant_link_create, participant_link_url
from surveys.models import Participant, ParticipantContact
from surveys.sms import SmsUnavailable, sms_send

logger = logging.getLogger(__name__)

# "Send me a new link": tries per client address and per typed contact, per hour.
NEW_LINK_PER_ADDRESS = 10
NEW_LINK_PER_CONTACT = 3
NEW_LINK_WINDOW = 3600
# At most this many participants get a link for one contact (a shared family e-mail address).
NEW_LINK_MAX_PARTICIPANTS = 5

PIN_PATTERN = re.compile(r"[0-9]{4,6}")
PIN_MAX_FAILURES = 5
PIN_LOCK_MINUTES = 15
# PIN tries per client address per hour, across participants (guessing many people's PINs).
PIN_TRIES_PER_ADDRESS = 30

PIN_FIELDS = ("pin_hash", "pin_failures", "pin_locked_until", "access_epoch")

EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class TypedContact:
    kind: str  # "email" or "phone"
    lookup: str  # the keyed digest


def typed_contact_parse(value: str) -> TypedContact:
    """What a participant typed into "send me a new link": an e-mail address or a phone
    number. Raises ValidationError with a message for the participant."""
    value = (value or "").strip()
    if not value:
        raise ValidationError(_("Type the e-mail address or mobile number the study has for you."))
    if len(value) > 254:
        raise ValidationError(_("That is too long for an e-mail address or a phone number."))
    if "@" in value:
        if not EMAIL_PATTERN.fullmatch(value):
            raise ValidationError(_("That e-mail address is not complete, e.g. name@example.org."))
        return TypedContact("email", contact_lookup("email", value))
    if re.fullmatch(r"[0-9+()\-.\s]+", ascii_digits(value)) and phone_normalise(value):
        return TypedContact("phone", contact_lookup("phone", value))
    # Digits and letters without an @: a number written with letters (555-CALL-NOW, "ext 4"),
    # which "at least 9 digits" would not explain, or an e-mail address without its @.
    if any(ch.isalpha() for ch in value) and any(ch.isdecimal() for ch in value):
        raise ValidationError(
            _(
                "A mobile number cannot contain letters: type it in digits only. An e-mail "
                "address needs its @."
            )
        )
    raise ValidationError(
        _("Type an e-mail address (with @) or a mobile number with at least 9 digits.")
    )


def new_link_request(*, contact: TypedContact) -> None:
    """Queue the lookup and sending (after commit). The same work whatever the outcome."""
    from surveys.tasks import new_link_send  # tasks import this module

    # robust: with the broker down the page still answers (the participant can ask again)
    transaction.on_commit(lambda: new_link_send.delay(contact.kind, contact.lookup), robust=True)


def new_link_send(*, kind: str, lookup: str, now: datetime | None = None) -> int:
    """Send a new personal link to every active participant whose contact digest matches, by
    the channel the participant typed (e-mail, or SMS falling back to e-mail when no SMS
    provider is set up). Returns how many messages went.

    A provider's refusal is logged without its text (it names the address) and does not stop
    the other participants' messages.
    """
    if kind not in ("email", "phone") or not lookup:
        return 0
    contacts = (
        ParticipantContact.objects.filter(
            **{f"{kind}_lookup": lookup}, participant__status=Participant.Status.ACTIVE
        )
        .select_related("participant__study")
        .order_by("participant_id")[:NEW_LINK_MAX_PARTICIPANTS]
    )
    sent = 0
    for contact in contacts:
        participant = contact.participant
        try:
            sent += _new_link_deliver(participant, contact, kind, now)
        except Exception as exc:  # any provider error; its text may name the address
            logger.warning(
                "A new link for participant %s could not be sent (%s).",
                participant.pk,
                type(exc).__name__,
            )
    return sent


def _new_link_deliver(participant, contact, kind: str, now) -> int:
    _link, token = participant_link_create(participant=participant, now=now)
    url = participant_link_url(token)
    with translation.override(participant.language):
        if kind == "phone":
            try:
                sms_send(to=contact.phone, body=_new_link_sms(participant, url))
                return 1
            except SmsUnavailable:
                if not contact.email:
                    return 0
        subject, body = _new_link_email(participant, url)
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[contact.email])
        return 1


def _new_link_sms(participant: Participant, url: str) -> str:
    return _("%(study)s: here is your new survey link. %(url)s") % {
        "study": participant.study.name,
        "url": url,
    }


def _new_link_email(participant: Participant, url: str) -> tuple[str, str]:
    subject = _("Your new survey link")
    body = _(
        "Hello,\n\n"
        "You asked for a new link to your surveys for %(study)s. Here it is:\n\n"
        "%(url)s\n\n"
        "It works for %(days)s days. Please do not forward it: it opens your own surveys.\n"
        "If you did not ask for it, you can ignore this message.\n"
    ) % {"study": participant.study.name, "url": url, "days": settings.PARTICIPANT_LINK_DAYS}
    return subject, body


# --- PIN ------------------------------------------------------------------------------------


class PinLocked(Exception):
    def __init__(self, until: datetime):
        super().__init__(until)
        self.until = until


def pin_clean(pin: str | None) -> str:
    return ascii_digits((pin or "").strip())


def pin_validate(pin: str, repeat: str) -> str:
    pin = pin_clean(pin)
    if not PIN_PATTERN.fullmatch(pin):
        raise ValidationError({"pin": _("A PIN is 4 to 6 digits (0–9).")})
    if len(set(pin)) == 1:
        raise ValidationError({"pin": _("Choose a PIN that is not one digit repeated.")})
    if pin != pin_clean(repeat):
        raise ValidationError({"repeat": _("The two PINs are not the same.")})
    return pin


def participant_pin_set(*, participant: Participant, pin: str, repeat: str) -> Participant:
    participant.pin_hash = make_password(pin_validate(pin, repeat))
    participant.pin_failures = 0
    participant.pin_locked_until = None
    participant.access_epoch += 1
    participant.save(update_fields=[*PIN_FIELDS, "updated_at"])
    return participant


def participant_pin_remove(*, participant: Participant) -> Participant:
    """The participant (after typing it) or a coordinator (a forgotten PIN) removes the PIN."""
    participant.pin_hash = ""
    participant.pin_failures = 0
    participant.pin_locked_until = None
    participant.access_epoch += 1
    participant.save(update_fields=[*PIN_FIELDS, "updated_at"])
    return participant


def participant_pin_verify(*, participant: Participant, pin: str, now=None) -> bool:
    """True for the right PIN. Counts wrong tries under a row lock, so parallel guesses cannot
    slip past the limit; raises PinLocked while tries are refused (after the lock is saved)."""
    now = now or timezone.now()
    outcome, until = _pin_try(participant.pk, pin_clean(pin), now)
    if outcome == "locked":
        raise PinLocked(until)
    return outcome == "right"


@transaction.atomic
def _pin_try(participant_id: int, pin: str, now: datetime) -> tuple[str, datetime | None]:
    locked = Participant.objects.select_for_update().get(pk=participant_id)
    if locked.pin_locked_until and locked.pin_locked_until > now:
        return "locked", locked.pin_locked_until
    if locked.pin_hash and check_password(pin, locked.pin_hash):
        Participant.objects.filter(pk=participant_id).update(pin_failures=0, pin_locked_until=None)
        return "right", None
    if locked.pin_failures + 1 >= PIN_MAX_FAILURES:
        until = now + timedelta(minutes=PIN_LOCK_MINUTES)
        Participant.objects.filter(pk=participant_id).update(pin_failures=0, pin_locked_until=until)
        return "locked", until
    Participant.objects.filter(pk=participant_id).update(pin_failures=F("pin_failures") + 1)
    return "wrong", None
