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
