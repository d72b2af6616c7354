"""Non-trivial reads, and the one place where a staff member's scope is applied."""

from django.db.models import QuerySet

from surveys.models import Assignment, Participant, Site, StaffRole, Study

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


def participant_editable_by(*, user, participant: Participant) -> bool:
    """PIs of the participant's study, and coordinators of the participant's site."""
    if user.is_superuser:
        return True
    roles = StaffRole.objects.filter(user=user, study_id=participant.study_id)
    return (
        roles.filter(role=ROLE.PRINCIPAL_INVESTIGATOR).exists()
        or roles.filter(role=ROLE.COORDINATOR, sites=participant.site_id).exists()
    )


def assignment_for_entry(*, user, assignment_id: int) -> tuple[Assignment | None, bool]:
    """The assignment if the user may see it (else None), and whether they may enter answers.

    PIs and researchers see the whole study, coordinators their own sites; only PIs and
    coordinators enter answers. Two small queries (the assignment by key, then the user's roles
    in its study); this runs on every survey submission, where correlated EXISTS subqueries
    were measured to cost several times more.
    """
    assignment = (
        Assignment.objects.select_related("participant", "wave").filter(pk=assignment_id).first()
    )
    if assignment is None:
        return None, False
    if user.is_superuser:
        return assignment, True
    participant = assignment.participant
    roles = StaffRole.objects.filter(user=user, study_id=participant.study_id).values_list(
        "role", "sites"
    )
    may_enter = may_see = False
    for role, site_id in roles:
        coordinates_site = role == ROLE.COORDINATOR and site_id == participant.site_id
        if role == ROLE.PRINCIPAL_INVESTIGATOR or coordinates_site:
            may_enter = may_see = True
        elif role == ROLE.RESEARCHER:
            may_see = True
    return (assignment, may_enter) if may_see else (None, False)
