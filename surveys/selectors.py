"""Non-trivial reads, and the one place where a staff member's scope is applied."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

from surveys import prepared
from surveys.models import Assignment, Instrument, Participant, Site, StaffRole, Study

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


@dataclass(frozen=True)
class EntryScope:
    assignment_id: int
    study_id: int
    may_enter: bool
    instrument: Instrument | None  # the study's instrument with the slug asked for, if any


def assignment_entry_scope(
    *, user, assignment_id: int, instrument_slug: str = ""
) -> EntryScope | None:
    """Whether the user may see (not None) and enter answers for an assignment, and the
    study's instrument named ``instrument_slug``.

    PIs and researchers see the whole study, coordinators their own sites; only PIs and
    coordinators enter answers. One join query, as this runs on every survey submission
    (ORM lookups and correlated EXISTS subqueries were measured to cost several times more).
    """
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            "surveys_entry_scope",
            "SELECT p.study_id, p.site_id, r.role, rs.site_id, ins.id, ins.name "
            "FROM surveys_assignment a "
            "JOIN surveys_participant p ON p.id = a.participant_id "
            "LEFT JOIN surveys_instrument ins ON ins.study_id = p.study_id AND ins.slug = %s "
            "LEFT JOIN surveys_staffrole r ON r.study_id = p.study_id AND r.user_id = %s "
            "LEFT JOIN surveys_staffrole_sites rs ON rs.staffrole_id = r.id "
            "WHERE a.id = %s",
            [instrument_slug, user.pk, assignment_id],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    study_id, participant_site, _, _, instrument_id, instrument_name = rows[0]
    instrument = (
        Instrument(pk=instrument_id, study_id=study_id, slug=instrument_slug, name=instrument_name)
        if instrument_id is not None
        else None
    )
    if user.is_superuser:
        return EntryScope(assignment_id, study_id, True, instrument)
    may_see, may_enter = _rights([(row[2], row[3]) for row in rows], participant_site)
    return EntryScope(assignment_id, study_id, may_enter, instrument) if may_see else None


@dataclass(frozen=True)
class ParticipantScope:
    assignment_id: int
    instrument: Instrument


def participant_entry_scope(
    *, participant_id: int, assignment_id: int, instrument_slug: str
) -> ParticipantScope | None:
    """The assignment and the wave's instrument named ``instrument_slug``, if both belong to
    this (active) participant; else None, which callers answer with 404 whatever the reason,
    so that a guessed or another participant's URL tells nothing."""
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            "surveys_participant_scope",
            "SELECT ins.id, ins.name, ins.study_id FROM surveys_assignment a "
            "JOIN surveys_participant p ON p.id = a.participant_id "
            "JOIN surveys_waveinstrument wi ON wi.wave_id = a.wave_id "
            "JOIN surveys_instrument ins ON ins.id = wi.instrument_id AND ins.slug = %s "
            "WHERE a.id = %s AND a.participant_id = %s AND p.status = %s",
            [instrument_slug, assignment_id, participant_id, Participant.Status.ACTIVE],
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
