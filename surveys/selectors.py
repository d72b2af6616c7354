"""Non-trivial reads, and the one place where a staff member's scope is applied."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from surveys import diary, logic, prepared
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    ContactAttempt,
    DiaryEntry,
    Instrument,
    Item,
    Message,
    Participant,
    ParticipantContact,
    ParticipantStatusChange,
    Response,
    Site,
    StaffRole,
    Study,
)
from surveys.scheduling import local_midnight

ROLE = StaffRole.Role


def studies_for_user(*, user) -> QuerySet[Study]:
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(staff_roles__user=user).distinct()


def sites_for_user(*, user) -> QuerySet[Site]:
    """Every site of the user's studies, except that a coordinator has only their own sites."""
    if user.is_superuser:
        return Site.objects.all()
    roles = StaffRole.objects.filter(user=user)
    whole_studies = roles.exclude(role=StaffRole.Role.COORDINATOR).values("study")
    coordinated = roles.filter(role=StaffRole.Role.COORDINATOR).values("sites")
    return Site.objects.filter(study__in=whole_studies) | Site.objects.filter(pk__in=coordinated)


def participants_for_user(*, user) -> QuerySet[Participant]:
    return Participant.objects.filter(site__in=sites_for_user(user=user)).select_related(
        "study", "site"
    )


def user_may_see_identifiers(*, user, study: Study) -> bool:
    """Researchers never see identifiers; PIs and coordinators do (within their scope)."""
    if user.is_superuser:
        return True
    return StaffRole.objects.filter(
        user=user,
        study=study,
        role__in=(StaffRole.Role.PRINCIPAL_INVESTIGATOR, StaffRole.Role.COORDINATOR),
    ).exists()


def studies_with_identifiers(*, user) -> QuerySet[Study]:
    """Studies where the user may see identifiers: PI or coordinator (a user can be a PI in
    one study and a researcher in another; group permissions alone do not tell)."""
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(
        staff_roles__user=user,
        staff_roles__role__in=(ROLE.PRINCIPAL_INVESTIGATOR, ROLE.COORDINATOR),
    ).distinct()


def participants_with_identifiers(*, user) -> QuerySet[Participant]:
    """The user's participants whose identifiers they may see (consents, alert follow-ups)."""
    return participants_for_user(user=user).filter(study__in=studies_with_identifiers(user=user))


def identifier_variables(
    *, study_id: int | None = None, instrument_id: int | None = None
) -> dict[int, frozenset[str]]:
    """Instrument id -> its variables that are identifiers: those whose item is marked as an
    identifier in any version of the instrument. A question marked in a later version hides
    the answers given to the earlier ones too, and a version that unmarks it shows none of
    them again. The audit log reads it per instrument (``surveys.audit.private_variables``);
    the datasets, the analyses, the answers' page, the data dictionary and erasure read it
    joined across the study (``study_identifier_variables``). The study's instruments, or one
    instrument's; one query."""
    items = Item.objects.filter(identifier=True)
    if study_id is not None:
        items = items.filter(version__instrument__study_id=study_id)
    if instrument_id is not None:
        items = items.filter(version__instrument_id=instrument_id)
    found: dict[int, set[str]] = {}
    for instrument, variable in items.values_list("version__instrument_id", "variable"):
        found.setdefault(instrument, set()).add(variable)
    return {instrument: frozenset(variables) for instrument, variables in found.items()}


def study_identifier_variables(*, study_id: int) -> frozenset[str]:
    """The variables that are identifiers anywhere in the study: marked in any version of any
    of its instruments (``identifier_variables``, joined). The dataset merges a variable asked
    in two instruments into one column, so a mark in one keeps the other's answers out too:
    the rule for the de-identified datasets (and the analyses, read off them), the answers'
    page, the data dictionary and erasure."""
    return frozenset().union(*identifier_variables(study_id=study_id).values())


def sites_for_enrolment(*, user) -> QuerySet[Site]:
    """Where the user may enrol: every site of the studies they lead, and their own sites as a
    coordinator; never in a study where they are a researcher."""
    if user.is_superuser:
        return Site.objects.all()
    roles = StaffRole.objects.filter(user=user)
    led = roles.filter(role=ROLE.PRINCIPAL_INVESTIGATOR).values("study")
    coordinated = roles.filter(role=ROLE.COORDINATOR).values("sites")
    return Site.objects.filter(Q(study__in=led) | Q(pk__in=coordinated))


def studies_led_by(*, user) -> QuerySet[Study]:
    """Studies where the user is principal investigator (all of them for a superuser)."""
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(
        staff_roles__user=user, staff_roles__role=ROLE.PRINCIPAL_INVESTIGATOR
    ).distinct()


def _rights(roles, participant_site_id: int) -> tuple[bool, bool]:
    """(may see, may enter answers or edit) for one participant, from the user's (role, site)
    rows in the participant's study: PIs see and edit the whole study, coordinators their own
    sites, researchers only see."""
    may_see = may_edit = False
    for role, site_id in roles:
        if role == ROLE.PRINCIPAL_INVESTIGATOR or (
            role == ROLE.COORDINATOR and site_id == participant_site_id
        ):
            may_see = may_edit = True
        elif role == ROLE.RESEARCHER:
            may_see = True
    return may_see, may_edit


def participant_editable_by(*, user, participant: Participant) -> bool:
    """PIs of the participant's study, and coordinators of the participant's site."""
    if user.is_superuser:
        return True
    roles = StaffRole.objects.filter(user=user, study_id=participant.study_id).values_list(
        "role", "sites"
    )
    return _rights(roles, participant.site_id)[1]


def participants_editable_by(*, user) -> QuerySet[Participant]:
    """The participants the user may act for (edit, enter answers, send a reminder now): the
    whole study for its PIs, their own sites for coordinators, none for researchers; like
    ``participant_editable_by`` for many. Group permissions alone do not tell: a PI of one
    study may be a researcher in another."""
    if user.is_superuser:
        return Participant.objects.select_related("study", "site")
    coordinated = StaffRole.objects.filter(user=user, role=ROLE.COORDINATOR).values("sites")
    return Participant.objects.filter(
        Q(study__in=studies_led_by(user=user)) | Q(site__in=coordinated)
    ).select_related("study", "site")


@dataclass(frozen=True)
class EntryRights:
    may_see: bool
    may_enter: bool  # never before consent
    consent_pending: bool  # the participant has still to consent on their phone


# Whether a user may see and enter answers for an assignment, as columns of the statement that
# locks it (surveys.submission.EntryGate), over its participant ``p``: their site, whether they
# have still to consent, the user's role in their study (one a study at most) and whether the
# user's sites include theirs. Parameters: the user's id, twice. (ORM lookups and correlated
# queries of their own were measured to cost several times more on every submission.)
STAFF_ENTRY_COLUMNS = (
    ", p.site_id, p.consent_pending, "
    "(SELECT r.role FROM surveys_staffrole r WHERE r.study_id = p.study_id AND r.user_id = %s), "
    "EXISTS (SELECT 1 FROM surveys_staffrole r "
    "JOIN surveys_staffrole_sites rs ON rs.staffrole_id = r.id "
    "WHERE r.study_id = p.study_id AND r.user_id = %s AND rs.site_id = p.site_id)"
)


def staff_entry_rights(*, user, values: tuple) -> EntryRights:
    """What ``STAFF_ENTRY_COLUMNS``' values allow the user: PIs and researchers see the whole
    study, coordinators their own sites; only PIs and coordinators enter answers, and only
    for a participant who has consented."""
    participant_site, pending, role, site_is_theirs = values
    if user.is_superuser:
        may_see = may_enter = True
    else:
        sites = participant_site if site_is_theirs else None
        may_see, may_enter = _rights([(role, sites)], participant_site)
    return EntryRights(may_see, may_enter and not pending, bool(pending))


# Whether an assignment is the participant's own, they are active and have consented, and the
# session started after their last PIN change or revocation (Participant.access_epoch): the
# conditions of the statement that locks it (surveys.submission.EntryGate), so that no one
# else's survey is ever locked. Parameters: the participant's id, the active status, the
# session's epoch.
PARTICIPANT_ENTRY_CONDITIONS = (
    " AND a.participant_id = %s AND p.status = %s AND p.access_epoch = %s AND NOT p.consent_pending"
)


@dataclass(frozen=True)
class ParticipantScope:
    assignment_id: int
    instrument: Instrument


def participant_entry_scope(
    *, participant_id: int, access_epoch: int, assignment_id: int, instrument_slug: str
) -> ParticipantScope | None:
    """The assignment and the wave's instrument named ``instrument_slug``, if both belong to
    this (active, consented) participant and the session is still good (``access_epoch``, see
    Participant.access_epoch); else None, which callers answer with 404 whatever the reason,
    so that a guessed or another participant's URL tells nothing."""
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            "surveys_participant_scope_consented",
            "SELECT ins.id, ins.name, ins.study_id FROM surveys_assignment a "
            "JOIN surveys_participant p ON p.id = a.participant_id "
            "JOIN surveys_waveinstrument wi ON wi.wave_id = a.wave_id "
            "JOIN surveys_instrument ins ON ins.id = wi.instrument_id AND ins.slug = %s "
            "WHERE a.id = %s AND a.participant_id = %s AND p.status = %s "
            "AND p.access_epoch = %s AND NOT p.consent_pending",
            [
                instrument_slug,
                assignment_id,
                participant_id,
                Participant.Status.ACTIVE,
                access_epoch,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    instrument = Instrument(pk=row[0], name=row[1], study_id=row[2], slug=instrument_slug)
    return ParticipantScope(assignment_id, instrument)


def participant_home(*, participant: Participant, now) -> dict:
    """What the participant's home page shows: surveys open now (each with its instruments
    and how far along), the next one coming, and how many are done."""
    assignments = list(
        participant.assignments.select_related("wave")
        .prefetch_related("wave__instruments", "responses")
        .order_by("due_at")
    )
    open_statuses = (
        Assignment.Status.SCHEDULED,
        Assignment.Status.OPEN,
        Assignment.Status.IN_PROGRESS,
    )
    due = []
    for assignment in assignments:
        if not (assignment.opens_at <= now < assignment.closes_at):
            continue
        if assignment.status not in open_statuses:
            continue
        states = {r.instrument_id: r.status for r in assignment.responses.all()}
        instruments = [
            (instrument, states.get(instrument.pk))
            for instrument in assignment.wave.instruments.all()
        ]
        due.append((assignment, instruments))
    upcoming = [
        a for a in assignments if a.opens_at > now and a.status == Assignment.Status.SCHEDULED
    ][:1]
    return {
        "due": due,
        "upcoming": upcoming,
        "done": sum(a.status == Assignment.Status.COMPLETED for a in assignments),
        "total": len(assignments),
    }


def next_assignment(*, participant: Participant, now) -> Assignment | None:
    """The participant's next survey not yet done: open now, or the next to open."""
    return (
        participant.assignments.select_related("wave")
        .filter(
            closes_at__gt=now,
            status__in=(
                Assignment.Status.SCHEDULED,
                Assignment.Status.OPEN,
                Assignment.Status.IN_PROGRESS,
            ),
        )
        .order_by("opens_at")
        .first()
    )


# --- The meeting diary ---------------------------------------------------------------------
DIARY_RECENT = 10


def diary_home(*, participant: Participant, now: datetime, limit: int = DIARY_RECENT) -> dict:
    """The diary on the home page: the latest entries (newest first), how many there are in
    all, and how many meetings were logged since the participant's last survey (``since`` is
    that survey's local date, None before the first one: then every entry counts). A meeting
    on the day of the last survey counts when it was logged after the survey was sent."""
    entries = list(participant.diary_entries.order_by("-occurred_on", "-created_at", "-id")[:limit])
    last = (
        participant.assignments.filter(completed_at__isnull=False)
        .order_by("-completed_at")
        .values_list("completed_at", flat=True)
        .first()
    )
    logged = participant.diary_entries.all()
    since = None
    if last is not None:
        since = diary.local_today(participant.timezone, last)
        logged = logged.filter(Q(occurred_on__gt=since) | Q(occurred_on=since, created_at__gt=last))
    return {
        "entries": entries,
        "total": participant.diary_entries.count(),
        "count": logged.count(),
        "since": since,
    }


@dataclass(frozen=True)
class DiaryPrefill:
    """A question's starting answer from the participant's meeting log."""

    value: int | str | list[str]
    count: int  # meetings counted
    since: date  # the first day counted (participant's local date)


def diary_prefill(
    *, participant: Participant, items: list[Item], now: datetime
) -> dict[str, DiaryPrefill]:
    """Starting answers for the items with ``options["diary"]``, from the meetings logged in
    each item's ``days`` up to today (the participant's local dates, today included): a count
    for a number question (of the item's group and format, when it names them), yes for a
    yes/no question, the groups logged for a multiple choice. Only where the log has a meeting
    to show; one query."""
    wanted = [(item, item.options["diary"]) for item in items if (item.options or {}).get("diary")]
    if not wanted:
        return {}
    today = diary.local_today(participant.timezone, now)
    longest = max(int(option.get("days") or 0) for _, option in wanted)
    if longest < 1:
        return {}
    entries = list(
        participant.diary_entries.filter(
            occurred_on__gt=today - timedelta(days=longest), occurred_on__lte=today
        ).values_list("group", "format", "occurred_on")
    )
    prefills: dict[str, DiaryPrefill] = {}
    for item, option in wanted:
        days = int(option.get("days") or 0)
        if days < 1:
            continue
        since = today - timedelta(days=days - 1)
        matching = [
            group
            for group, fmt, day in entries
            if day >= since
            and option.get("group", group) == group
            and option.get("format", fmt) == fmt
        ]
        if not matching:
            continue
        if item.kind in (Item.Kind.INTEGER, Item.Kind.DECIMAL):
            value: int | str | list[str] = len(matching)
            if logic.is_numeric(item.max_value) and value > float(item.max_value):
                continue  # not a valid answer: leave the question to the participant
        elif item.kind == Item.Kind.YESNO:
            value = "1"
        elif item.kind == Item.Kind.MULTIPLE:
            logged = set(matching)
            value = [c["code"] for c in item.choices or [] if c["code"] in logged]
            if not value:
                continue
        else:
            continue
        prefills[item.variable] = DiaryPrefill(value=value, count=len(matching), since=since)
    return prefills


DIARY_TABLE_COLUMNS = (
    "study_id",
    "site",
    "group",
    "group_label",
    "format",
    "format_label",
    "occurred_day",
    "logged_day",
)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def diary_entries_table(
    *, study: Study, participants: QuerySet[Participant] | None = None, language: str = "en"
) -> Iterator[tuple]:
    """The study's meeting diary as a tidy long table, one row per logged meeting, in the
    order of ``DIARY_TABLE_COLUMNS``: the participant's pseudonymous study ID, site code,
    group and format codes with their labels, and, de-identified, the day of the meeting and
    the day it was logged as days since enrolment (enrolment day = 0; the day logged is the
    participant's local date). No calendar dates, no contact details. ``participants``
    narrows it to a staff member's scope (``participants_for_user``)."""
    entries = DiaryEntry.objects.filter(participant__study=study)
    if participants is not None:
        entries = entries.filter(participant__in=participants.values("pk"))
    rows = entries.order_by(
        "participant__site__code", "participant__code", "occurred_on", "created_at", "id"
    ).values_list(
        "participant__code",
        "participant__site__code",
        "participant__enrolled_on",
        "participant__timezone",
        "group",
        "format",
        "occurred_on",
        "created_at",
    )
    for code, site, enrolled_on, tz, group, fmt, occurred_on, created_at in rows.iterator(2000):
        logged_on = timezone.localtime(created_at, _zone(tz)).date()
        yield (
            code,
            site,
            group,
            diary.group_label(group, language),
            fmt,
            diary.format_label(fmt, language),
            (occurred_on - enrolled_on).days,
            (logged_on - enrolled_on).days,
        )


# --- The call list ----------------------------------------------------------------------------

CLOSING_SOON_DAYS = 7
# A survey is overdue once its due day is over on the participant's clock (``due_at`` is the
# due day's local midnight): a baseline due on the day of enrolment is not overdue on that
# day. The day is 24 hours long but on the days clocks change (23 or 25 in most zones; at most
# two hours either way anywhere): past ``DUE_DAY_LONGEST`` it is surely over, and within the
# band between the shortest and the longest each survey's own day is worked out.
DUE_DAY_SHORTEST = timedelta(hours=22)
DUE_DAY_LONGEST = timedelta(hours=26)


def due_day_over(due_at: datetime, zone: ZoneInfo, now: datetime) -> bool:
    """Whether the day a survey is due (``due_at``, its local midnight) is over on the
    participant's clock."""
    return now >= local_midnight(due_at.astimezone(zone).date() + timedelta(days=1), zone)


def _overdue_in_the_band(assignments, now: datetime) -> list[int]:
    """The surveys whose due day may just have ended (a day of 22 to 26 hours) and has."""
    near = assignments.filter(
        due_at__lte=now - DUE_DAY_SHORTEST, due_at__gt=now - DUE_DAY_LONGEST
    ).values_list("pk", "due_at", "participant__timezone")
    return [pk for pk, due_at, zone in near if due_day_over(due_at, _zone(zone), now)]


def call_list(*, user, now=None, soon_days: int = CLOSING_SOON_DAYS):
    """Open surveys not done that are overdue (past their due day) or closing within
    ``soon_days``, for the user's sites: most urgent first (closing soonest, then most earlier
    misses). Each row carries the participant's earlier misses and last contact attempt; a
    fixed number of queries whatever the number of participants."""
    now = now or timezone.now()
    latest_attempt = ContactAttempt.objects.filter(participant=OuterRef("participant")).order_by(
        "-attempted_at"
    )
    misses = (
        Assignment.objects.filter(
            participant=OuterRef("participant"), status=Assignment.Status.MISSED
        )
        .values("participant")
        .annotate(n=Count("pk"))
        .values("n")
    )
    candidates = Assignment.objects.filter(
        participant__in=participants_for_user(user=user),
        participant__status=Participant.Status.ACTIVE,
        status__in=(Assignment.Status.OPEN, Assignment.Status.IN_PROGRESS),
        closes_at__gt=now,
    )
    return (
        candidates.filter(
            Q(due_at__lte=now - DUE_DAY_LONGEST)
            | Q(pk__in=_overdue_in_the_band(candidates, now))
            | Q(closes_at__lte=now + timedelta(days=soon_days))
        )
        .select_related("wave", "participant__site", "participant__study")
        .annotate(
            earlier_misses=Coalesce(Subquery(misses), 0),
            last_attempt_at=Subquery(latest_attempt.values("attempted_at")[:1]),
            last_attempt_method=Subquery(latest_attempt.values("method")[:1]),
            last_attempt_outcome=Subquery(latest_attempt.values("outcome")[:1]),
        )
        # The primary key last: a total order, so that the pages of the admin's call list
        # neither repeat nor skip a row (the same participant can have two open surveys).
        .order_by("closes_at", "-earlier_misses", "participant__code", "pk")
    )


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str  # enrolment, consent, status, survey, response, message, contact, audit
    title: str
    detail: str = ""
    response_id: int | None = None


def participant_timeline(
    *, participant: Participant, show_staff_notes: bool
) -> list[TimelineEvent]:
    """Everything that happened to one participant, newest first: enrolment and consent, each
    survey's window and outcome, responses, invitations and reminders, contact attempts and
    the reasons of status changes (both staff's free text: only with ``show_staff_notes``,
    never for researchers) and status changes. A fixed number of queries."""
    events = [
        TimelineEvent(
            participant.created_at,
            "enrolment",
            "Enrolled",
            f"site {participant.site.code}, enrolment date {participant.enrolled_on:%Y-%m-%d}",
        )
    ]
    for consent in Consent.objects.filter(participant=participant).select_related("version"):
        events.append(
            TimelineEvent(
                consent.agreed_at or consent.recorded_at,
                "consent",
                f"Consent: {consent.get_method_display()}",
                f"version {consent.version.version}, given {consent.consented_on:%Y-%m-%d}",
            )
        )
    for change in ParticipantStatusChange.objects.filter(participant=participant).select_related(
        "changed_by"
    ):
        by = change.changed_by.get_username() if change.changed_by else "the system"
        events.append(
            TimelineEvent(
                change.changed_at,
                "status",
                f"Status: {change.get_from_status_display()} → {change.get_to_status_display()}",
                f"by {by}" + (f": {change.reason}" if change.reason and show_staff_notes else ""),
            )
        )
    assignments = list(participant.assignments.select_related("wave").order_by("opens_at"))
    for assignment in assignments:
        name = str(assignment.wave.name)
        if assignment.wave.recurrence_days:
            name += f" #{assignment.occurrence + 1}"
        events.append(
            TimelineEvent(
                assignment.opens_at,
                "survey",
                f"{name}: window opens",
                # The participant's own dates, as the call list and their page show them (in
                # UTC the due day is a day early east of Greenwich, and "closes" the day after
                # the last west of it).
                f"due {assignment.due_day():%Y-%m-%d}, last day {assignment.last_day():%Y-%m-%d} "
                f"({participant.timezone}); now {assignment.get_status_display().lower()}",
            )
        )
        if assignment.status == Assignment.Status.MISSED:
            events.append(
                TimelineEvent(assignment.closes_at, "survey", f"{name}: missed (window closed)")
            )
    for response in (
        Response.objects.filter(assignment__participant=participant)
        .select_related("assignment__wave", "instrument")
        .order_by("started_at")
    ):
        submitted = response.status == Response.Status.SUBMITTED
        events.append(
            TimelineEvent(
                response.submitted_at if submitted else response.updated_at,
                "response",
                f"{response.assignment.wave.name}: {response.instrument.name} "
                + ("submitted" if submitted else "draft saved"),
                response_id=response.pk,
            )
        )
    for message in Message.objects.filter(assignment__participant=participant).select_related(
        "assignment__wave"
    ):
        what = "Invitation" if message.sequence == 0 else f"Reminder {message.sequence}"
        events.append(
            TimelineEvent(
                message.sent_at or message.scheduled_at,
                "message",
                f"{what} for {message.assignment.wave.name} by {message.get_channel_display()}",
                message.get_status_display() + (f": {message.reason}" if message.reason else ""),
            )
        )
    if show_staff_notes:
        for attempt in ContactAttempt.objects.filter(participant=participant).select_related("by"):
            by = attempt.by.get_username() if attempt.by else ""
            events.append(
                TimelineEvent(
                    attempt.attempted_at,
                    "contact",
                    f"{attempt.get_method_display()}: {attempt.get_outcome_display()}",
                    (f"by {by}" if by else "") + (f" — {attempt.note}" if attempt.note else ""),
                )
            )
    for event in AuditEvent.objects.filter(
        participant=participant, action=AuditEvent.Action.IDENTIFIERS_ERASE
    ):
        events.append(
            TimelineEvent(event.at, "audit", "Identifiers erased", f"by {event.username or '—'}")
        )
    return sorted(events, key=lambda e: e.at, reverse=True)


# Questions answered in the participant's own words: they may name people, so they leave the
# system only in identified exports, and researchers do not read them on the response page.
FREE_TEXT_KINDS = frozenset({Item.Kind.TEXT, Item.Kind.NOTES})


def response_answer_rows(
    *, response: Response, show_identifiers: bool, language: str = "en"
) -> list[tuple[str, str, str]]:
    """(variable, question, answer) for each answered item of the response's version, choice
    codes with their labels; answers to identifiers (``study_identifier_variables``: marked
    in any version of any of the study's instruments, a later one too) and free text are
    hidden unless ``show_identifiers`` (researchers never see them, as de-identified exports
    leave them out)."""
    hidden = frozenset()
    if not show_identifiers:
        hidden = study_identifier_variables(study_id=response.instrument.study_id)
    rows = []
    for item in response.instrument_version.items.order_by("position"):
        if item.variable not in response.answers:
            continue
        value = response.answers[item.variable]
        if item.variable in hidden:
            shown = "(identifier: hidden)"
        elif item.kind in FREE_TEXT_KINDS and not show_identifiers:
            shown = "(free text: hidden)"
        else:
            labels = {
                str(choice.get("code")): (choice.get("label") or {}).get(language, "")
                for choice in item.choices
            }
            codes = value if isinstance(value, list) else [value]
            shown = "; ".join(
                f"{labels[str(code)]} ({code})" if str(code) in labels else str(code)
                for code in codes
            )
        rows.append((item.variable, item.text(language), shown))
    return rows


def call_list_rows(*, user, now=None) -> list[Assignment]:
    """The call list as rows, each with ``overdue``, ``phone`` and ``may_send``: the
    participant's phone for a user who may see identifiers in that study (coordinators, PIs),
    else None (researchers); ``may_send`` where the user may send a reminder now (PIs,
    the participant's coordinators). The queries do not grow with the number of rows."""
    now = now or timezone.now()
    return _call_list_rows_complete(user=user, rows=list(call_list(user=user, now=now)), now=now)


def call_list_page(*, user, number, per_page: int, now=None) -> Page:
    """One page of the call list, its rows as ``call_list_rows`` makes them (only this page's
    phones and send rights are looked up): page ``number`` as ``Paginator.get_page`` reads it,
    so a number that is not one gives the first page and one past the end the last. The
    paginator's ``count`` is the whole list's length."""
    now = now or timezone.now()
    page = Paginator(call_list(user=user, now=now), per_page).get_page(number)
    page.object_list = _call_list_rows_complete(user=user, rows=list(page.object_list), now=now)
    return page


def _call_list_rows_complete(*, user, rows: list[Assignment], now: datetime) -> list[Assignment]:
    studies = {row.participant.study for row in rows}
    shown = {study.pk for study in studies if user_may_see_identifiers(user=user, study=study)}
    phones = {}
    if shown:
        phones = {
            contact.participant_id: contact.phone
            for contact in ParticipantContact.objects.filter(
                participant__in=[r.participant_id for r in rows if r.participant.study_id in shown]
            ).only("participant", "phone")
        }
    sendable = set(
        participants_editable_by(user=user)
        .filter(pk__in=[row.participant_id for row in rows])
        .values_list("pk", flat=True)
    )
    for row in rows:
        row.overdue = due_day_over(row.due_at, _zone(row.participant.timezone), now)
        row.may_send = row.participant_id in sendable
        row.phone = (
            phones.get(row.participant_id, "") if row.participant.study_id in shown else None
        )
    return rows


def site_enrolment_allowed(*, user, site: Site) -> bool:
    """PIs of the site's study and the site's coordinators enrol there; researchers never."""
    if user.is_superuser:
        return True
    return StaffRole.objects.filter(
        Q(role=ROLE.PRINCIPAL_INVESTIGATOR) | Q(role=ROLE.COORDINATOR, sites=site),
        user=user,
        study_id=site.study_id,
    ).exists()
