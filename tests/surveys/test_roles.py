import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from surveys.models import ParticipantContact, StaffRole
from surveys.selectors import participants_for_user
from surveys.services import staff_role_assign


def test_each_role_gets_its_group_and_staff_access(staff_user, study, site_a):
    for role, group in [
        (StaffRole.Role.PRINCIPAL_INVESTIGATOR, "Principal investigators"),
        (StaffRole.Role.COORDINATOR, "Coordinators"),
        (StaffRole.Role.RESEARCHER, "Researchers"),
    ]:
        user = staff_user(study=study, role=role, sites=[site_a], username=f"u-{role}")
        assert user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == [group]


def test_a_coordinator_needs_sites_of_the_same_study(study, db):
    from recovery.services import study_create_from_template
    from tests.factories import UserFactory

    user = UserFactory()
    with pytest.raises(ValidationError):
        staff_role_assign(user=user, study=study, role=StaffRole.Role.COORDINATOR, sites=[])
    other = study_create_from_template(slug="o", name="O", sites=[("Z", "Z", "UTC")])
    with pytest.raises(ValidationError):
        staff_role_assign(
            user=user, study=study, role=StaffRole.Role.COORDINATOR, sites=list(other.sites.all())
        )


def test_researchers_have_no_permission_on_contact_details(researcher, coordinator_a):
    assert not researcher.has_perm("surveys.view_participantcontact")
    assert not researcher.has_perm("surveys.change_participant")
    assert coordinator_a.has_perm("surveys.view_participantcontact")


def test_a_coordinator_sees_only_participants_of_their_sites(coordinator_a, site_a, site_b, enrol):
    mine = enrol(site=site_a, code="NYC-1")
    enrol(site=site_b, code="LDN-1")
    assert list(participants_for_user(user=coordinator_a)) == [mine]


def test_coordinator_admin_list_and_page_of_another_site(
    client, coordinator_a, site_a, site_b, enrol
):
    enrol(site=site_a, code="NYC-1")
    theirs = enrol(site=site_b, code="LDN-1")
    client.force_login(coordinator_a)
    listing = client.get(reverse("admin:surveys_participant_changelist"))
    assert listing.status_code == 200
    assert "NYC-1" in listing.text
    assert "LDN-1" not in listing.text
    other_page = client.get(reverse("admin:surveys_participant_change", args=[theirs.pk]))
    assert other_page.status_code in (302, 404)  # never the page itself
    assert "LDN-1" not in other_page.text


def test_researcher_sees_participants_but_no_contact_details_in_the_admin(
    client, researcher, site_a, enrol
):
    participant = enrol(
        site=site_a, code="NYC-9", contact={"email": "dee@example.org", "phone": "+12125550199"}
    )
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_participant_change", args=[participant.pk]))
    assert page.status_code == 200
    assert "NYC-9" in page.text
    assert "dee@example.org" not in page.text
    assert "+12125550199" not in page.text
    assert ParticipantContact.objects.filter(participant=participant).exists()


def test_coordinator_sees_contact_details_of_their_own_participant(
    client, coordinator_a, site_a, enrol
):
    participant = enrol(site=site_a, code="NYC-3", contact={"email": "lee@example.org"})
    client.force_login(coordinator_a)
    page = client.get(reverse("admin:surveys_participant_change", args=[participant.pk]))
    assert page.status_code == 200
    assert "lee@example.org" in page.text


def test_a_pi_of_one_study_who_is_a_researcher_in_another_gets_no_identifiers_there(
    client, study, site_a, enrol, staff_user
):
    """Group permissions come from the user's strongest role anywhere; the selectors decide
    per study."""
    from recovery.services import study_create_from_template
    from surveys.consent import ConsentInput, econsent_give
    from surveys.models import Participant, SafetyAlert

    own = study_create_from_template(slug="own", name="Own study", sites=[("OWN", "O", "UTC")])
    user = staff_user(study=own, role="pi", username="mixed")
    staff_role_assign(user=user, study=study, role="researcher")
    there = enrol(site=site_a, consent=ConsentInput(method="electronic"))
    econsent_give(participant=there, typed_name="Rosa Quintero", agreed=True, language="en")
    SafetyAlert.objects.create(
        study=study, participant=there, assignment=there.assignments.first(), variable="x",
        question="q", answer="a", created_at=there.created_at, follow_up_note="Called Rosa's aunt",
    )  # fmt: skip
    client.force_login(user)
    add = client.get("/admin/surveys/participant/add/").text
    assert str(site_a) not in add  # no site of the study where they only read
    reply = client.post(
        "/admin/surveys/participant/add/",
        {
            "study": study.pk, "site": site_a.pk, "enrolled_on": "2026-11-01",
            "timezone": "UTC", "language": "en", "preferred_channel": "email",
            "consent_method": "electronic",
            "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
            "contact-0-email": "someone@example.org",
        },
    )  # fmt: skip
    assert reply.status_code == 200 and Participant.objects.filter(study=study).count() == 1
    assert there.code not in client.get("/admin/surveys/consent/").text
    alerts = client.get("/admin/surveys/safetyalert/").text
    assert there.code not in alerts and "aunt" not in alerts
