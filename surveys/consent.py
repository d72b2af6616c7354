"""Consent at enrolment (recorded by staff, or given on the participant's phone) and the erasure
of identifiers a withdrawal may ask for."""

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from surveys.audit import answer_values_erase, audit_log
from surveys.exports import export_files_erased_for
from surveys.models import (
    AuditEvent,
    Consent,
    ConsentVersion,
    ContactAttempt,
    DatasetLine,
    DiaryEntry,
    Message,
    Participant,
    ParticipantContact,
    ParticipantLink,
    ParticipantStatusChange,
    Response,
    SafetyAlert,
    Study,
)
from surveys.selectors import study_identifier_variables

TYPED_NAME_MAX = 200


@dataclass(frozen=True)
class ConsentInput:
    """How a participant consented, as staff record it at enrolment. ``version`` defaults to
    the study's current one; e-consent needs no date or witness: the phone records them."""

    method: str
    version: ConsentVersion | None = None
    consented_on: date | None = None
    obtained_by: object = None


def consent_version_current(*, study: Study) -> ConsentVersion | None:
    """The newest approved version of the study's consent text."""
    return study.consent_versions.order_by("-approved_on", "-id").first()


def consent_validate(*, study: Study, consent: ConsentInput, today: date) -> ConsentInput:
    """The consent with its version filled in, or a ValidationError per field."""
    errors: dict[str, str] = {}
    if consent.method not in Consent.Method.values:
        errors["consent_method"] = "Choose how the participant consented."
    version = consent.version or consent_version_current(study=study)
    if version is None:
        errors["consent_version"] = (
            "The study has no consent text yet: a principal investigator adds one under "
            "Consent versions."
        )
    elif version.study_id != study.pk:
        errors["consent_version"] = "This consent version belongs to another study."
    if consent.method in (Consent.Method.WRITTEN, Consent.Method.VERBAL):
        if consent.consented_on is None:
            errors["consent_date"] = "Give the date of consent."
        elif consent.consented_on > today:
            errors["consent_date"] = "The date of consent cannot be in the future."
        elif version is not None and consent.consented_on < version.approved_on:
            errors["consent_date"] = (
                f"Version {version.version} was approved on {version.approved_on:%Y-%m-%d}, "
                "after this date."
            )
        if consent.obtained_by is None:
            errors["consent_obtained_by"] = "Say who obtained consent."
    if errors:
        raise ValidationError(errors)
    return replace(consent, version=version)


def consent_record(
    *, participant: Participant, consent: ConsentInput, recorded_by=None, now: datetime
) -> Consent | None:
    """Record consent obtained by staff, or mark the participant as waiting to consent on their
    phone (no survey opens before). Call inside the enrolment's transaction, validated."""
    if consent.method == Consent.Method.ELECTRONIC:
        Participant.objects.filter(pk=participant.pk).update(consent_pending=True)
        participant.consent_pending = True
        return None
    return Consent.objects.create(
        participant=participant,
        version=consent.version,
        method=consent.method,
        consented_on=consent.consented_on,
        obtained_by=consent.obtained_by,
        recorded_at=now,
        recorded_by=recorded_by,
    )


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def econsent_give(
    *,
    participant: Participant,
    typed_name: str,
    agreed: bool,
    language: str,
    version_id: int | None = None,
    text_sha256: str | None = None,
    now: datetime | None = None,
) -> Consent:
    """The participant agrees on their phone: the text they read (in their language), the
    name they typed and the moment, kept as written. ``version_id`` is the version the page
    showed and ``text_sha256`` the digest of its text: consent to a text the participant did not
    see is refused."""
    now = now or timezone.now()
    locked = Participant.objects.select_for_update().select_related("study").get(pk=participant.pk)
    if not locked.consent_pending:
        raise ValidationError("Consent was already recorded.", code="already")
    version = consent_version_current(study=locked.study)
    if version is None:
        raise ValidationError("The study has no consent text.", code="no_text")
    if version_id is not None and version_id != version.pk:
        raise ValidationError(
            "The consent text has just been updated. Please read the new text.", code="changed"
        )
    errors = {}
    name = " ".join(typed_name.split())
    if len(name) < 2:
        errors["typed_name"] = "Type your name to sign."
    elif len(name) > TYPED_NAME_MAX:
        errors["typed_name"] = f"Use at most {TYPED_NAME_MAX} characters."
    if not agreed:
        errors["agree"] = "Tick the box to say you agree."
    if errors:
        raise ValidationError(errors)
    shown_language, text = version.text_in(language)
    shown = text_digest(text)
    if text_sha256 is not None and text_sha256 != shown:
        # The page's text and the one stored differ (edited meanwhile): agree to it again.
        raise ValidationError(
            "The consent text has just been updated. Please read the new text.", code="changed"
        )
    consent = Consent.objects.create(
        participant=locked,
        version=version,
        method=Consent.Method.ELECTRONIC,
        consented_on=now.astimezone(ZoneInfo(locked.timezone)).date(),
        language=shown_language,
        text=text,
        text_sha256=shown,
        typed_name=name,
        agreed_at=now,
        recorded_at=now,
    )
    locked.consent_pending = False
    locked.save(update_fields=["consent_pending", "updated_at"])
    participant.consent_pending = False
    return consent


@transaction.atomic
def participant_identifiers_erase(
    *, participant: Participant, by=None, request=None, now: datetime | None = None
) -> dict[str, int]:
    """Erase everything that identifies the participant, wherever it lives, and keep their
    de-identified answers: contact and locator details, typed consent names, free text of
    staff (contact notes, status reasons, alert follow-ups), answers to items marked as
    identifiers; personal links stop working and no
    message goes out. Audited. Returns what was erased, as counts."""
    now = now or timezone.now()
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    if locked.status != Participant.Status.WITHDRAWN:
        raise ValidationError(
            {"erase_identifiers": "Identifiers are erased only for a withdrawn participant."}
        )
    if locked.identifiers_erased_at is not None:
        return {}  # done already: nothing left to erase, nothing to record again
    counts = {
        "contact_details": ParticipantContact.objects.filter(participant=locked).delete()[0],
        "consent_names": Consent.objects.filter(participant=locked)
        .exclude(typed_name="")
        .update(typed_name=""),
        "contact_notes": ContactAttempt.objects.filter(participant=locked)
        .exclude(note="")
        .update(note=""),
        # Staff's free text may name people too: status reasons go, the changes stay.
        "status_reasons": ParticipantStatusChange.objects.filter(participant=locked)
        .exclude(reason="")
        .update(reason=""),
        "alert_notes": SafetyAlert.objects.filter(participant=locked)
        .exclude(follow_up_note="")
        .update(follow_up_note=""),
        "links": ParticipantLink.objects.filter(participant=locked, revoked_at=None).update(
            revoked_at=now
        ),
        "messages": Message.objects.filter(
            assignment__participant=locked, status=Message.Status.QUEUED
        ).update(status=Message.Status.CANCELLED, reason="identifiers erased", updated_at=now),
    }
    # Every instrument's identifiers, whichever instrument an answer is to: erasing more than
    # the one instrument's is the safe side.
    identifying = set(study_identifier_variables(study_id=locked.study_id))
    erased_answers = 0
    if identifying:
        for response in Response.objects.filter(assignment__participant=locked).filter(
            Q(answers__has_any_keys=list(identifying))
        ):
            kept = {k: v for k, v in response.answers.items() if k not in identifying}
            erased_answers += len(response.answers) - len(kept)
            Response.objects.filter(pk=response.pk).update(answers=kept)
    counts["identifier_answers"] = erased_answers
    # Kept CSV lines of exports (surveys.datasets.linecache) are built afresh if ever needed.
    counts["dataset_lines"] = DatasetLine.objects.filter(participant=locked).delete()[0]
    counts["export_files"] = export_files_erased_for(locked)
    locked.identifiers_erased_at = now
    locked.pin_hash = ""
    locked.access_epoch += 1
    locked.save(update_fields=["identifiers_erased_at", "pin_hash", "access_epoch", "updated_at"])
    participant.identifiers_erased_at = now
    audit_log(
        action=AuditEvent.Action.IDENTIFIERS_ERASE,
        user=by,
        request=request,
        participant=locked,
        obj=locked,
        details=counts,
    )
    return counts


@transaction.atomic
def participant_answers_erase(
    *, participant: Participant, by=None, request=None, now: datetime | None = None
) -> dict[str, int]:
    """At a withdrawn participant's request (where their consent allows it): erase what they
    answered — every response (drafts and submitted), every meeting-diary entry, the answer
    copied into a safety alert (the alert itself, and what the team did, stay) and kept export
    lines, and the values of answers staff entered or changed for them, kept in the audit log
    (which items, by whom and when stay). Their assignments stay, so retention counts still show
    who took part when. Audited. Returns what was erased, as counts."""
    now = now or timezone.now()
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    if locked.status != Participant.Status.WITHDRAWN:
        raise ValidationError(
            {"erase_answers": "Answers are erased only for a withdrawn participant."}
        )
    if locked.answers_erased_at is not None:
        return {}
    counts = {
        # The responses alone: their deletion also removes their SubgroupAnswer copies.
        "responses": Response.objects.filter(assignment__participant=locked)
        .delete()[1]
        .get(Response._meta.label, 0),
        "diary_entries": DiaryEntry.objects.filter(participant=locked).delete()[0],
        "alert_answers": SafetyAlert.objects.filter(participant=locked)
        .exclude(answer="")
        .update(answer=""),
        "dataset_lines": DatasetLine.objects.filter(participant=locked).delete()[0],
        "audit_answer_values": answer_values_erase(locked),
        "export_files": export_files_erased_for(locked),
    }
    locked.answers_erased_at = now
    locked.save(update_fields=["answers_erased_at", "updated_at"])
    participant.answers_erased_at = now
    audit_log(
        action=AuditEvent.Action.ANSWERS_ERASE,
        user=by,
        request=request,
        participant=locked,
        obj=locked,
        details=counts,
    )
    return counts
