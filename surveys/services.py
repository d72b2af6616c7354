"""Everything that writes to the survey engine's tables."""

import contextlib
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from surveys import diary
from surveys.audit import audit_log
from surveys.consent import (
    ConsentInput,
    consent_record,
    consent_validate,
)
from surveys.models import (
    ROLE_GROUP_NAMES,
    Assignment,
    AuditEvent,
    Consent,
    ContactAttempt,
    DiaryEntry,
    Message,
    Participant,
    ParticipantContact,
    ParticipantStatusChange,
    Response,
    Site,
    StaffRole,
    Study,
    Wave,
)
from surveys.reminders import reminders_plan
from surveys.scheduling import Window, wave_window

CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "alternative_contacts",
    "locator_notes",
)


def assignment_status_at(window: Window, now: datetime) -> str:
    """The status a not-yet-answered assignment with this window has at ``now``."""
    if now >= window.closes_at:
        return Assignment.Status.MISSED
    if now >= window.opens_at:
        return Assignment.Status.OPEN
    return Assignment.Status.SCHEDULED


def assignment_build(
    *, participant: Participant, wave: Wave, occurrence: int = 0, now: datetime
) -> Assignment:
    """An unsaved assignment of one occurrence of a wave, with its window in the participant's
    time zone and the status that window gives it at ``now``."""
    window = wave_window(
        enrolled_on=participant.enrolled_on,
        timezone_name=participant.timezone,
        offset_days=wave.offset_days,
        window_before_days=wave.window_before_days,
        window_after_days=wave.window_after_days,
        recurrence_days=wave.recurrence_days,
        occurrence=occurrence,
    )
    return Assignment(
        participant=participant,
        wave=wave,
        occurrence=occurrence,
        opens_at=window.opens_at,
        due_at=window.due_at,
        closes_at=window.closes_at,
        status=assignment_status_at(window, now),
        status_changed_at=now,
    )


def assignments_build(
    *, participant: Participant, waves: Iterable[Wave], now: datetime | None = None
) -> list[Assignment]:
    """Unsaved assignments of ``participant`` for its study's single (non-recurring) waves."""
    now = now or timezone.now()
    return [
        assignment_build(participant=participant, wave=wave, now=now)
        for wave in waves
        if not wave.recurrence_days and wave.is_active
    ]


CODE_DIGITS = 4


def participant_code_format(*, site_code: str, number: int) -> str:
    """The study ID of a site's number: NYC and 43 give NYC-0043."""
    return f"{site_code}-{number:0{CODE_DIGITS}d}"


def participant_code_next(*, site: Site) -> str:
    """The site's next study ID: its prefix and the next number (NYC-0001, NYC-0002, …).

    The site row is locked, so two enrolments at once never get the same number; a number
    already taken by hand is passed over. Call inside a transaction.
    """
    return participant_codes_next(site=site, count=1)[0]


def participant_codes_next(*, site: Site, count: int) -> list[str]:
    """The site's next ``count`` study IDs, taken at once (a seeded cohort): the numbering of
    ``participant_code_next``, which takes one, so that later enrolments carry on from them."""
    locked = Site.objects.select_for_update().get(pk=site.pk)
    number = locked.last_number
    in_study = Participant.objects.filter(study_id=locked.study_id)
    codes: list[str] = []
    while len(codes) < count:  # one query, unless numbers ahead were typed by hand
        candidates = [
            participant_code_format(site_code=locked.code, number=n)
            for n in range(number + 1, number + 1 + count - len(codes))
        ]
        taken = set(in_study.filter(code__in=candidates).values_list("code", flat=True))
        codes += [code for code in candidates if code not in taken]
        number += len(candidates)
    Site.objects.filter(pk=locked.pk).update(last_number=number)
    return codes


def enrolment_today(*, timezone_name: str, now: datetime) -> date:
    """The latest day an enrolment or a paper consent can carry: the later of the server's
    date and the participant's (``timezone_name``), so that a day that has begun on either
    clock is not refused, whichever side of midnight the coordinator and the participant are."""
    latest = timezone.localdate(now)
    # An unknown time zone is the timezone field's own error: the server's date then.
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
        latest = max(latest, timezone.localdate(now, timezone=ZoneInfo(timezone_name)))
    return latest


def participant_today(*, timezone_name: str, now: datetime | None = None) -> date:
    """Today on the participant's clock; on the server's for a time zone that does not exist
    (the timezone field's own check refuses it)."""
    now = now or timezone.now()
    try:
        return timezone.localdate(now, timezone=ZoneInfo(timezone_name))
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.localdate(now)


# No study enrols anyone before this day: an earlier one is a typo of the year (0026 for 2026),
# and a day near year 1 would not fit the schedule's date arithmetic.
EARLIEST_ENROLMENT = date(2000, 1, 1)


def enrolment_date_validate(
    *, enrolled_on: date, timezone_name: str, consent: ConsentInput | None, now: datetime
) -> None:
    """Refuse, on ``enrolled_on``, an enrolment day ahead of today, before the consent it
    rests on, or before ``EARLIEST_ENROLMENT``. Every way in runs it: the admin's form, the
    API (through ``participant_enrol``) and each line of a CSV import.

    Today is the later of the server's date and the participant's (``timezone_name``): a day
    that has begun on either clock is not refused, whichever side of midnight the coordinator
    and the participant are. E-consent has no date here: the phone records it later.
    """
    latest = enrolment_today(timezone_name=timezone_name, now=now)
    consented_on = consent.consented_on if consent is not None else None
    if enrolled_on < EARLIEST_ENROLMENT:
        raise ValidationError(
            {
                "enrolled_on": ValidationError(
                    "%(enrolled_on)s is too long ago: is the year right? Write the day the "
                    "participant was enrolled, %(earliest)s at the earliest.",
                    code="enrolled_too_long_ago",
                    params={
                        "enrolled_on": enrolled_on.isoformat(),
                        "earliest": EARLIEST_ENROLMENT.isoformat(),
                    },
                )
            }
        )
    if enrolled_on > latest:
        raise ValidationError(
            {
                "enrolled_on": ValidationError(
                    "%(enrolled_on)s is in the future: write the day the participant was "
                    "enrolled, %(latest)s at the latest.",
                    code="enrolled_in_future",
                    params={"enrolled_on": enrolled_on.isoformat(), "latest": latest.isoformat()},
                )
            }
        )
    if (
        consented_on is not None
        and consent.method != Consent.Method.ELECTRONIC
        and enrolled_on < consented_on
    ):
        raise ValidationError(
            {
                "enrolled_on": ValidationError(
                    "%(enrolled_on)s is before the consent date (%(consented_on)s): nobody is "
                    "enrolled before they consent.",
                    code="enrolled_before_consent",
                    params={
                        "enrolled_on": enrolled_on.isoformat(),
                        "consented_on": consented_on.isoformat(),
                    },
                )
            }
        )


@transaction.atomic
def participant_enrol(
    *,
    participant: Participant,
    contact: dict | None = None,
    consent: ConsentInput | None = None,
    enrolled_by=None,
    plan_reminders: bool = True,
    now: datetime | None = None,
) -> Participant:
    """Save a new participant, their consent, their contact details (when given) and their
    assignments, and plan their invitations.

    ``contact=None`` leaves the contact row to the caller (the admin's inline form saves it).
    ``consent`` is required of staff (the admin, the API and the import pass it); e-consent
    leaves the participant waiting to consent on their phone.
    """
    unknown = set(contact or {}) - set(CONTACT_FIELDS)
    if unknown:
        raise ValidationError({"contact": f"Unknown contact fields: {', '.join(sorted(unknown))}."})
    # The consent's and the enrolment day's problems together, each on its field. Both are
    # judged by the real clock, as the import's are: ``now`` only sets the statuses of the
    # assignments (a test enrols on a clock of its own).
    errors: dict[str, list[str]] = {}
    if consent is not None:
        try:
            consent = consent_validate(
                study=participant.study,
                consent=consent,
                today=enrolment_today(timezone_name=participant.timezone, now=timezone.now()),
            )
        except ValidationError as exc:
            errors |= exc.message_dict
    try:
        if participant.enrolled_on is not None:  # else full_clean below says it is required
            enrolment_date_validate(
                enrolled_on=participant.enrolled_on,
                timezone_name=participant.timezone,
                consent=consent,
                now=timezone.now(),
            )
    except ValidationError as exc:
        errors |= exc.message_dict
    if errors:
        raise ValidationError(errors)
    if not participant.code and participant.site_id:
        participant.code = participant_code_next(site=participant.site)
    participant.full_clean()
    participant.save()
    if consent is not None:
        consent_record(
            participant=participant,
            consent=consent,
            recorded_by=enrolled_by,
            now=now or timezone.now(),
        )
    if contact is not None:
        row = ParticipantContact(participant=participant, **contact)
        row.full_clean(exclude=["participant"])
        row.save()
    Assignment.objects.bulk_create(
        assignments_build(participant=participant, waves=participant.study.waves.all(), now=now)
    )
    # The admin saves the contact after this and plans then; a bulk import plans once for all.
    if contact is not None and plan_reminders:
        reminders_plan(assignments=list(participant.assignments.all()), now=now)
    return participant


def assignment_statuses_refresh(*, now: datetime | None = None) -> dict[str, int]:
    """Open assignments whose window has opened and mark missed those whose window has closed.

    Each move is one conditional UPDATE, so running it twice (or from two schedulers) is harmless.
    """
    now = now or timezone.now()
    opened = Assignment.objects.filter(
        status=Assignment.Status.SCHEDULED,
        opens_at__lte=now,
        closes_at__gt=now,
        participant__status=Participant.Status.ACTIVE,
    ).update(status=Assignment.Status.OPEN, status_changed_at=now)
    # Only people still being followed miss a wave; withdrawn or deceased participants'
    # assignments are cancelled by their status change, never counted as missed.
    missed = Assignment.objects.filter(
        status__in=(
            Assignment.Status.SCHEDULED,
            Assignment.Status.OPEN,
            Assignment.Status.IN_PROGRESS,
        ),
        closes_at__lte=now,
        participant__status__in=(
            Participant.Status.ACTIVE,
            Participant.Status.LOST_TO_FOLLOW_UP,
        ),
    ).update(status=Assignment.Status.MISSED, status_changed_at=now)
    return {"opened": opened, "missed": missed}


@transaction.atomic
def staff_role_assign(
    *, user, study: Study, role: str, sites: Iterable[Site] = (), by=None, request=None
) -> StaffRole:
    """Give ``user`` a role in ``study`` (replacing any earlier one) and the matching group.
    Audited (``by``, or the user of ``request``, gave it), with the role before and after."""
    sites = list(sites)
    staff_role_validate(study=study, role=role, sites=sites)
    before = StaffRole.objects.filter(user=user, study=study).first()
    was = _role_state(before) if before is not None else None
    staff_role, _ = StaffRole.objects.update_or_create(
        user=user, study=study, defaults={"role": role}
    )
    staff_role.sites.set(sites if role == StaffRole.Role.COORDINATOR else [])
    staff_groups_sync(user=user)
    now = _role_state(staff_role)
    if now != was:
        _role_change_audit(staff_role, before=was, after=now, by=by, request=request)
    return staff_role


def _role_state(staff_role: StaffRole) -> dict:
    return {
        "role": staff_role.role,
        "sites": sorted(staff_role.sites.values_list("code", flat=True)),
    }


def _role_change_audit(staff_role, *, before, after, by, request) -> None:
    audit_log(
        action=AuditEvent.Action.ROLE_CHANGE,
        user=by,
        request=request,
        study=staff_role.study,
        obj=staff_role if after is not None else None,
        details={"staff": staff_role.user.get_username(), "before": before, "after": after},
    )


def staff_role_validate(*, study: Study, role: str, sites: Iterable[Site]) -> None:
    sites = list(sites)
    if role not in StaffRole.Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if role == StaffRole.Role.COORDINATOR and not sites:
        raise ValidationError({"sites": "A coordinator needs at least one site."})
    if any(site.study_id != study.pk for site in sites):
        raise ValidationError({"sites": "Every site must belong to the study."})


@transaction.atomic
def staff_role_remove(*, staff_role: StaffRole, by=None, request=None) -> None:
    user = staff_role.user
    was = _role_state(staff_role)
    _role_change_audit(staff_role, before=was, after=None, by=by, request=request)
    staff_role.delete()
    staff_groups_sync(user=user)


def staff_groups_sync(*, user) -> None:
    """Put the user in exactly the groups of the roles they hold; staff while they hold any."""
    role_groups = set(ROLE_GROUP_NAMES.values())
    wanted = {ROLE_GROUP_NAMES[role] for role in user.study_roles.values_list("role", flat=True)}
    user.groups.remove(*user.groups.filter(name__in=role_groups - wanted))
    user.groups.add(*Group.objects.filter(name__in=wanted))
    is_staff = bool(wanted) or user.is_superuser
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


RECURRING_HORIZON_DAYS = 14


def recurring_assignments_extend(
    *, now: datetime | None = None, horizon_days: int = RECURRING_HORIZON_DAYS
) -> int:
    """Create the coming occurrences of active recurring waves (weekly check-ins).

    For every active participant, each occurrence whose window opens within ``horizon_days``
    and has not closed yet gets an assignment; occurrences that closed before the wave was
    switched on are not back-filled. Idempotent (the unique constraint on participant, wave
    and occurrence absorbs repeats), so the periodic task can run as often as it likes.
    """
    now = now or timezone.now()
    horizon = now + timedelta(days=horizon_days)
    created = 0
    waves = Wave.objects.filter(is_active=True, recurrence_days__isnull=False).select_related(
        "study"
    )
    for wave in waves:
        until = wave.recurrence_until_days
        if until is None:
            until = (
                Wave.objects.filter(study_id=wave.study_id, recurrence_days__isnull=True)
                .order_by("-offset_days")
                .values_list("offset_days", flat=True)
                .first()
            ) or wave.offset_days
        participants = Participant.objects.filter(
            study_id=wave.study_id, status=Participant.Status.ACTIVE
        ).only("pk", "enrolled_on", "timezone")
        batch: list[Assignment] = []
        for participant in participants.iterator(chunk_size=2000):
            batch.extend(_occurrences_due(wave, participant, now, horizon, until))
            if len(batch) >= 2000:
                created += _create_missing(wave, batch)
                batch = []
        created += _create_missing(wave, batch)
    if created:
        reminders_plan(
            assignments=list(
                Assignment.objects.filter(
                    wave__in=waves,
                    messages__isnull=True,
                    status__in=(
                        Assignment.Status.SCHEDULED,
                        Assignment.Status.OPEN,
                        Assignment.Status.IN_PROGRESS,
                    ),
                ).only("pk")
            ),
            now=now,
        )
    return created


def _create_missing(wave: Wave, batch: list[Assignment]) -> int:
    existing = set(
        Assignment.objects.filter(
            wave=wave, participant_id__in={a.participant_id for a in batch}
        ).values_list("participant_id", "occurrence")
    )
    new = [a for a in batch if (a.participant_id, a.occurrence) not in existing]
    # ignore_conflicts: a concurrent run may have created some of them meanwhile.
    Assignment.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _occurrences_due(
    wave: Wave, participant: Participant, now: datetime, horizon: datetime, until: int
) -> list[Assignment]:
    # Occurrence k is due offset + k * recurrence days after enrolment; start near "now".
    days_enrolled = (now.date() - participant.enrolled_on).days
    first = max(
        0, (days_enrolled - wave.offset_days - wave.window_after_days - 1) // wave.recurrence_days
    )
    out = []
    occurrence = first
    while wave.offset_days + occurrence * wave.recurrence_days <= until:
        assignment = assignment_build(
            participant=participant, wave=wave, occurrence=occurrence, now=now
        )
        if assignment.opens_at > horizon:
            break
        if assignment.closes_at > now:
            out.append(assignment)
        occurrence += 1
    return out


# Statuses after which nobody is contacted or asked for answers any more.
NOT_FOLLOWED = (
    Participant.Status.WITHDRAWN,
    Participant.Status.DECEASED,
    Participant.Status.COMPLETED,
)
UNANSWERED = (Assignment.Status.SCHEDULED, Assignment.Status.OPEN, Assignment.Status.IN_PROGRESS)


def participant_site_moved_from(*, participant: Participant, site_id: int) -> None:
    """Remember the site a participant is being moved away from (``former_sites``, by code;
    saved with the participant): exports made while they were there hold their rows, and an
    erasure must find those files too."""
    code = Site.objects.filter(pk=site_id).values_list("code", flat=True).first()
    if code and code not in participant.former_sites and code != participant.site.code:
        participant.former_sites = [*participant.former_sites, code]


@transaction.atomic
def participant_timezone_change(
    *, participant: Participant, timezone_name: str, now: datetime | None = None
) -> Participant:
    """The participant moved to another time zone. Surveys not yet open get their windows on
    the new clock (local midnights there); an open one keeps the window it was announced with
    (moved, it could close under a participant answering it). Every message still queued is
    planned again on the new clock (times of day, quiet hours)."""
    now = now or timezone.now()
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError({"timezone": f"Unknown time zone {timezone_name!r}."}) from None
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    if locked.timezone == timezone_name:
        return locked
    locked.timezone = timezone_name
    locked.save(update_fields=["timezone", "updated_at"])
    # The assignments' rows first, then their messages (reminders_plan's order).
    followed = list(
        locked.assignments.select_for_update().filter(status__in=UNANSWERED).select_related("wave")
    )
    moved = []
    for assignment in followed:
        if assignment.status != Assignment.Status.SCHEDULED:
            continue
        window = assignment_build(
            participant=locked, wave=assignment.wave, occurrence=assignment.occurrence, now=now
        )
        assignment.opens_at, assignment.due_at, assignment.closes_at = (
            window.opens_at,
            window.due_at,
            window.closes_at,
        )
        assignment.status = window.status
        assignment.status_changed_at = now
        moved.append(assignment)
    Assignment.objects.bulk_update(
        moved, ["opens_at", "due_at", "closes_at", "status", "status_changed_at"]
    )
    reminders_plan(assignments=followed, now=now)
    participant.timezone = timezone_name
    return locked


def _assignments_reopened(*, participant: Participant, now: datetime) -> list[Assignment]:
    """The assignments cancelled by the moves that took the participant out of the followed
    statuses, since they last left them (withdrawn, then deceased by mistake: the withdrawal
    cancelled them; cancelled at those very moments: not one cancelled on its own before),
    each back to the status its window gives it now (in progress where a draft was begun)."""
    changes = ParticipantStatusChange.objects.filter(participant=participant)
    left = (
        changes.filter(to_status__in=NOT_FOLLOWED)
        .exclude(from_status__in=NOT_FOLLOWED)
        .order_by("-changed_at", "-pk")
        .values_list("changed_at", flat=True)
        .first()
    )
    if left is None:
        return []
    moments = changes.filter(to_status__in=NOT_FOLLOWED, changed_at__gte=left).values_list(
        "changed_at", flat=True
    )
    reopened = list(
        participant.assignments.filter(
            status=Assignment.Status.CANCELLED, status_changed_at__in=list(moments)
        ).select_for_update()
    )
    begun = set(
        Response.objects.filter(assignment__in=reopened, status=Response.Status.DRAFT).values_list(
            "assignment_id", flat=True
        )
    )
    for assignment in reopened:
        if now >= assignment.closes_at:
            assignment.status = Assignment.Status.MISSED
        elif now >= assignment.opens_at:
            # Begun before (a draft kept): in progress again, resumed where it was left.
            assignment.status = (
                Assignment.Status.IN_PROGRESS if assignment.pk in begun else Assignment.Status.OPEN
            )
        else:
            assignment.status = Assignment.Status.SCHEDULED
        assignment.status_changed_at = now
    Assignment.objects.bulk_update(reopened, ["status", "status_changed_at"])
    return reopened


@transaction.atomic
def participant_status_change(
    *,
    participant: Participant,
    status: str,
    reason: str = "",
    changed_by=None,
    request=None,
    now: datetime | None = None,
) -> Participant:
    """Move a participant to ``status``, record who did it and why, and, when they are no
    longer followed (withdrawn, deceased, completed), cancel every unanswered assignment and
    every message not yet sent: all contact stops at once. Back to being followed (a
    withdrawal recorded by mistake, a study extended), the surveys that change cancelled come
    back as their windows stand now (open, not yet open, or missed) and their messages are
    planned again. Erasing a withdrawn participant's identifiers is its own service
    (``surveys.consent.participant_identifiers_erase``)."""
    now = now or timezone.now()
    if status not in Participant.Status.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    if locked.status == status:
        return locked
    if status == Participant.Status.WITHDRAWN and not reason.strip():
        raise ValidationError({"reason": "Say why the participant withdrew."})
    ParticipantStatusChange.objects.create(
        participant=locked,
        from_status=locked.status,
        to_status=status,
        reason=reason.strip(),
        changed_by=changed_by,
        changed_at=now,
    )
    audit_log(
        action=AuditEvent.Action.STATUS_CHANGE,
        user=changed_by,
        request=request,
        participant=locked,
        details={"from": locked.status, "to": status},  # the reason may name people: not here
    )
    if locked.status in NOT_FOLLOWED and status not in NOT_FOLLOWED:
        _assignments_reopened(participant=locked, now=now)
    locked.status = status
    locked.save(update_fields=["status", "updated_at"])
    if status == Participant.Status.ACTIVE:
        # Back to active from any status (lost to follow-up included, whose queued messages
        # the dispatcher cancelled): their surveys' messages are planned again (found by
        # review: the participant page's save had been the only re-plan after "lost").
        reminders_plan(assignments=list(locked.assignments.filter(status__in=UNANSWERED)), now=now)
    if status in NOT_FOLLOWED:
        locked.assignments.filter(status__in=UNANSWERED).update(
            status=Assignment.Status.CANCELLED, status_changed_at=now
        )
        Message.objects.filter(assignment__participant=locked, status=Message.Status.QUEUED).update(
            status=Message.Status.CANCELLED,
            reason=f"participant {locked.get_status_display().lower()}",
            updated_at=now,
        )
    participant.status = status
    return locked


def participant_language_set(*, participant: Participant, language: str) -> None:
    """The language the participant reads their pages and messages in."""
    participant.language = language
    participant.save(update_fields=["language"])


# --- The meeting diary ---------------------------------------------------------------------
# How long before enrolment a meeting can still be logged: the follow-ups ask about the past
# 30 days, so the first survey may count meetings from just before the participant joined.
DIARY_DAYS_BEFORE_ENROLMENT = 30


@transaction.atomic
def diary_entry_log(
    *,
    participant: Participant,
    group: str,
    format: str,
    occurred_on: date,
    client_id: uuid.UUID,
    now: datetime | None = None,
) -> DiaryEntry:
    """Store a meeting the participant logged on their home page.

    ``group`` and ``format`` must be codes registered with ``surveys.diary``; the day can be
    neither after today where the participant lives nor more than 30 days before enrolment.
    Idempotent on ``client_id``: the same form sent twice (a double tap, a resend) stores one
    entry and returns it. Messages are in the active language (the participant's, in views).
    """
    now = now or timezone.now()
    existing = DiaryEntry.objects.filter(client_id=client_id).first()
    if existing is not None:
        if existing.participant_id != participant.pk:
            # Never another participant's entry, and nothing said about it.
            raise ValidationError({"client_id": _("This form has expired. Please try again.")})
        return existing
    errors: dict[str, str] = {}
    if not diary.is_group(group):
        errors["group"] = _("Choose a group from the list.")
    if not diary.is_format(format):
        errors["format"] = _("Choose how the meeting took place from the list.")
    today = diary.local_today(participant.timezone, now)
    earliest = participant.enrolled_on - timedelta(days=DIARY_DAYS_BEFORE_ENROLMENT)
    if occurred_on > today:
        errors["occurred_on"] = _(
            "This date is in the future. Log a meeting on the day it took place or later."
        )
    elif occurred_on < earliest:
        errors["occurred_on"] = _(
            "This date is too long ago. Meetings can be logged from %(day)s on."
        ) % {"day": date_format(earliest, "j F Y")}
    if errors:
        raise ValidationError(errors)
    entry, _created = DiaryEntry.objects.get_or_create(
        client_id=client_id,
        defaults={
            "participant": participant,
            "group": group,
            "format": format,
            "occurred_on": occurred_on,
        },
    )
    if entry.participant_id != participant.pk:  # a race with another participant's same id
        raise ValidationError({"client_id": _("This form has expired. Please try again.")})
    return entry


@transaction.atomic
def diary_entry_delete(*, participant: Participant, entry_id: int) -> DiaryEntry | None:
    """Remove one of the participant's own diary entries (logged by mistake) and return it;
    None when the participant has no such entry (another's, or already removed)."""
    entry = (
        DiaryEntry.objects.select_for_update().filter(pk=entry_id, participant=participant).first()
    )
    if entry is not None:
        entry.delete()
    return entry


def contact_attempt_log(
    *,
    participant: Participant,
    method: str,
    outcome: str,
    by,
    note: str = "",
    assignment: Assignment | None = None,
    now: datetime | None = None,
) -> ContactAttempt:
    """Record one attempt to reach a participant (validated as a whole; nothing half-saved)."""
    if assignment is not None and assignment.participant_id != participant.pk:
        raise ValidationError({"assignment": "That survey belongs to another participant."})
    attempt = ContactAttempt(
        participant=participant,
        assignment=assignment,
        method=method,
        outcome=outcome,
        note=note.strip(),
        attempted_at=now or timezone.now(),
        by=by,
    )
    attempt.full_clean()
    attempt.save()
    return attempt


def messages_send_now(*, messages, now: datetime | None = None) -> int:
    """Bring these messages forward to now where they are still queued, or queue them again
    where they failed (a provider's long outage, a phone number since corrected), and their
    survey is open: the dispatcher sends them within a minute, after its usual checks. One
    that may have gone out (to review) is left alone: it is never sent twice blindly."""
    now = now or timezone.now()
    open_surveys = messages.filter(
        assignment__status__in=(Assignment.Status.OPEN, Assignment.Status.IN_PROGRESS)
    )
    forward = open_surveys.filter(status=Message.Status.QUEUED).update(
        scheduled_at=now, updated_at=now
    )
    again = open_surveys.filter(status=Message.Status.FAILED).update(
        status=Message.Status.QUEUED,
        scheduled_at=now,
        claimed_at=None,
        send_started_at=None,
        reason="failed; queued again by the study team",
        updated_at=now,
    )
    return forward + again


def assignment_send_now(*, assignment: Assignment, now: datetime | None = None) -> int:
    """Send the next queued message of an open survey now; 1, or 0 when none is waiting."""
    following = (
        Message.objects.filter(assignment=assignment, status=Message.Status.QUEUED)
        .order_by("scheduled_at")
        .values_list("pk", flat=True)[:1]
    )
    return messages_send_now(messages=Message.objects.filter(pk__in=list(following)), now=now)
