"""What each role can reach in the admin, across two studies and two sites."""

import json

import pytest
from django.urls import reverse

from recovery.services import study_create_from_template
from surveys.models import Assignment, Participant, StaffRole, Wave
from surveys.services import staff_role_assign, staff_role_remove
from tests.factories import UserFactory


@pytest.fixture
def other_study(db):
    return study_create_from_template(
        slug="other", name="Other study", sites=[("OTH", "Other site", "UTC")]
    )


def test_roles_and_groups_follow_each_other(study, site_a, other_study):
    user = UserFactory(username="pat")
    staff_role_assign(user=user, study=study, role=StaffRole.Role.COORDINATOR, sites=[site_a])
    staff_role_assign(user=user, study=study, role=StaffRole.Role.RESEARCHER)
    assert list(user.groups.values_list("name", flat=True)) == ["Researchers"]
    staff_role_assign(user=user, study=other_study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    assert set(user.groups.values_list("name", flat=True)) == {
        "Researchers",
        "Principal investigators",
    }
    for role in list(user.study_roles.all()):
        staff_role_remove(staff_role=role)
    user.refresh_from_db()
    assert not user.groups.exists()
    assert not user.is_staff


def test_a_pi_gives_roles_only_in_the_studies_they_lead(client, staff_user, study, other_study):
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi-a")
    client.force_login(pi)
    response = client.post(
        reverse("admin:surveys_staffrole_add"),
        {
            "user": pi.pk,
            "study": other_study.pk,
            "role": StaffRole.Role.PRINCIPAL_INVESTIGATOR,
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert "Select a valid choice" in response.text
    assert not StaffRole.objects.filter(user=pi, study=other_study).exists()


def test_a_coordinator_role_without_sites_is_a_form_error_not_a_crash(client, staff_user, study):
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi-a")
    newcomer = UserFactory(username="newcomer")
    client.force_login(pi)
    response = client.post(
        reverse("admin:surveys_staffrole_add"),
        {
            "user": newcomer.pk,
            "study": study.pk,
            "role": StaffRole.Role.COORDINATOR,
        },
    )
    assert response.status_code == 200
    assert "A coordinator needs at least one site." in response.text
    assert not StaffRole.objects.filter(user=newcomer).exists()


def test_a_researcher_sees_only_their_own_studys_design(client, researcher, other_study):
    client.force_login(researcher)
    waves = client.get(reverse("admin:surveys_wave_changelist"))
    assert waves.status_code == 200
    assert "Other study" not in waves.text
    other_wave = Wave.objects.filter(study=other_study).first()
    page = client.get(reverse("admin:surveys_wave_change", args=[other_wave.pk]))
    assert page.status_code in (302, 404)


def test_a_coordinator_cannot_rewrite_an_assignment(client, coordinator_a, site_a, enrol):
    participant = enrol(site=site_a, code="NYC-5")
    assignment = participant.assignments.get(wave__slug="m1")
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_assignment_change", args=[assignment.pk])
    client.post(
        url,
        {
            "status": "completed",
            "participant": participant.pk,
            "wave": assignment.wave_id,
            "occurrence": 0,
        },
    )
    assignment.refresh_from_db()
    assert assignment.status != Assignment.Status.COMPLETED


def test_a_coordinator_in_one_study_and_researcher_in_another_cannot_edit_the_other(
    client, study, site_a, other_study, enrol, staff_user
):
    user = staff_user(
        study=study, role=StaffRole.Role.COORDINATOR, sites=[site_a], username="mixed"
    )
    staff_role_assign(user=user, study=other_study, role=StaffRole.Role.RESEARCHER)
    theirs = enrol(site=other_study.sites.get(), code="OTH-1")
    client.force_login(user)
    url = reverse("admin:surveys_participant_change", args=[theirs.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="code"' not in page.text  # read-only view
    client.post(
        url,
        {
            "study": other_study.pk,
            "site": theirs.site_id,
            "code": "RENAMED",
            "status": "withdrawn",
            "enrolled_on": "2026-01-15",
            "timezone": "UTC",
            "language": "en",
            "preferred_channel": "email",
        },
    )
    theirs.refresh_from_db()
    assert theirs.code == "OTH-1"
    assert theirs.status == Participant.Status.ACTIVE


def test_healthz_says_only_up_or_down(client, db):
    body = client.get("/healthz").json()
    assert "vendor" not in str(body) and "transport" not in str(body)


def test_not_even_a_pi_edits_questions_in_place(client, staff_user, study):
    from surveys.models import Item

    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi-x")
    item = Item.objects.filter(version__instrument__study=study).first()
    client.force_login(pi)
    url = reverse("admin:surveys_item_change", args=[item.pk])
    assert client.get(url).status_code == 200  # can look
    client.post(
        url,
        {
            "variable": item.variable,
            "kind": item.kind,
            "max_value": "999",
            "label": '{"en": "changed"}',
            "position": item.position,
        },
    )
    item.refresh_from_db()
    assert item.max_value != "999"
    assert client.get(reverse("admin:surveys_item_add")).status_code == 403


def study_form(study, **changes) -> dict:
    """The study's change form as the admin submits it, with its sites and waves unchanged."""
    data = {
        "slug": study.slug,
        "name": study.name,
        "description": study.description,
        "default_language": study.default_language,
        "default_timezone": study.default_timezone,
        "export_id": study.export_id,
        "crisis_resources": json.dumps(study.crisis_resources),
        "alert_email": study.alert_email,
        "quiet_hours_start": study.quiet_hours_start.strftime("%H:%M"),
        "quiet_hours_end": study.quiet_hours_end.strftime("%H:%M"),
    }
    for prefix, rows, fields in (
        ("sites", study.sites.all(), ("code", "name", "timezone")),
        (
            "waves",
            study.waves.all(),
            (
                "position",
                "slug",
                "name",
                "offset_days",
                "window_before_days",
                "window_after_days",
                "recurrence_days",
                "is_active",
            ),
        ),
    ):
        rows = list(rows)
        data |= {
            f"{prefix}-TOTAL_FORMS": str(len(rows)),
            f"{prefix}-INITIAL_FORMS": str(len(rows)),
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
        for n, row in enumerate(rows):
            data[f"{prefix}-{n}-id"] = str(row.pk)
            data[f"{prefix}-{n}-study"] = str(study.pk)
            for field in fields:
                value = getattr(row, field)
                if value is None or value is False:
                    continue
                data[f"{prefix}-{n}-{field}"] = "on" if value is True else str(value)
    return data | changes


@pytest.fixture
def pi_here_researcher_there(staff_user, study, other_study):
    """A principal investigator of ``study`` who is a researcher in ``other_study``."""
    user = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="mixed")
    staff_role_assign(user=user, study=other_study, role=StaffRole.Role.RESEARCHER)
    return user


def test_a_pi_of_one_study_cannot_change_another_study_where_they_are_a_researcher(
    client, pi_here_researcher_there, other_study
):
    client.force_login(pi_here_researcher_there)
    url = reverse("admin:surveys_study_change", args=[other_study.pk])
    page = client.get(url)
    assert page.status_code == 200  # they may see it: they research it
    assert 'name="alert_email"' not in page.text and 'name="export_id"' not in page.text
    assert 'name="sites-0-code"' not in page.text and 'name="waves-0-offset_days"' not in page.text
    before = list(other_study.waves.values_list("offset_days", flat=True))
    refused = client.post(
        url,
        study_form(
            other_study,
            alert_email="someone-else@example.org",
            export_id="study_id",
            **{"sites-0-code": "MINE", "waves-0-offset_days": "1"},
        ),
    )
    assert refused.status_code == 403
    other_study.refresh_from_db()
    assert (other_study.alert_email, other_study.export_id) == ("", "pseudonym")
    assert list(other_study.sites.values_list("code", flat=True)) == ["OTH"]
    assert list(other_study.waves.values_list("offset_days", flat=True)) == before
    delete = reverse("admin:surveys_study_delete", args=[other_study.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert type(other_study).objects.filter(pk=other_study.pk).exists()


def test_a_pi_still_changes_the_study_they_lead(client, pi_here_researcher_there, study):
    client.force_login(pi_here_researcher_there)
    url = reverse("admin:surveys_study_change", args=[study.pk])
    page = client.get(url)
    assert 'name="alert_email"' in page.text and 'name="sites-0-code"' in page.text
    saved = client.post(url, study_form(study, alert_email="on-call@example.org"))
    assert saved.status_code == 302, saved.context and saved.context["errors"]
    study.refresh_from_db()
    assert study.alert_email == "on-call@example.org"
