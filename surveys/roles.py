"""Staff role groups and the model permissions each role has.

Row-level scope (a coordinator's sites) is applied by the selectors; these permissions decide
which admin pages and actions a role has at all.
"""

from django.contrib.auth.models import Group, Permission

from surveys.models import ROLE_GROUP_NAMES, StaffRole

_ENGINE_MODELS = (
    "study",
    "site",
    "participant",
    "participantcontact",
    "participantlink",
    "participantstatuschange",
    "instrument",
    "instrumentversion",
    "item",
    "wave",
    "waveinstrument",
    "assignment",
    "response",
    "staffrole",
    "diaryentry",
    "safetyalert",
    "message",
    "reminderrule",
    "contactattempt",
    "consentversion",
    "consent",
    "auditevent",
)

# What every staff role may look at: the study design and the de-identified research data.
_VIEW_RESEARCH_DATA = {
    f"view_{model}"
    for model in (
        "study", "site", "wave", "waveinstrument", "instrument", "instrumentversion", "item",
        "participant", "participantstatuschange", "assignment", "response", "diaryentry",
        "consentversion",
    )
}  # fmt: skip

ROLE_PERMISSIONS: dict[str, set[str]] = {
    StaffRole.Role.PRINCIPAL_INVESTIGATOR: {
        f"{action}_{model}"
        for model in _ENGINE_MODELS
        for action in ("view", "add", "change", "delete")
    },
    # Coordinators enrol and follow people: they see and edit contact details.
    StaffRole.Role.COORDINATOR: _VIEW_RESEARCH_DATA
    | {
        "add_participant",
        "change_participant",
        "view_participantcontact",
        "view_participantlink",
        "add_participantcontact",
        "change_participantcontact",
        "change_assignment",
        # Safety alerts: the team member on call opens the alert and records the follow-up.
        "view_safetyalert",
        "change_safetyalert",
        # The outbox: coordinators follow their participants' messages and send now.
        "view_message",
        "view_reminderrule",
        # The contact log: coordinators record their attempts to reach people.
        "view_contactattempt",
        "add_contactattempt",
        # Consent records (who consented to which text, how): coordinators record them at
        # enrolment and print copies.
        "view_consent",
    },
    # Researchers see de-identified data only: no contact details, nothing to change.
    StaffRole.Role.RESEARCHER: set(_VIEW_RESEARCH_DATA),
}


def role_groups_ensure(**kwargs) -> None:
    """Create or update the three role groups (run after every migrate)."""
    for role, group_name in ROLE_GROUP_NAMES.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = Permission.objects.filter(
            content_type__app_label="surveys", codename__in=ROLE_PERMISSIONS[role]
        )
        group.permissions.set(perms)
