"""Review 2: suspected defects (temporary; deleted after the review)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recovery.services import study_create_from_template
from surveys import tasks
from surveys.exports import ExportSpec, export_job_run, export_job_start
from surveys.models import Assignment, AuditEvent, DatasetExportJob, Message, StaffRole, Study
from surveys.services import staff_role_assign
from surveys.tokens import staff_token_create
from tests.factories import UserFactory
from tests.scope_helpers import body_of, form_data


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.export_job_run, "delay", lambda *a, **k: calls.append(a))
    return calls


@pytest.fixture
def people(site_a, site_b, enrol):
    enrolled = timezone.localdate() - timedelta(days=40)
    return [
        enrol(
            site=site,
            code=code,
            enrolled_on=enrolled,
            contact={"email": f"{code.lower()}@example.org", "phone": "+12125550111"},
        )
        for site, code in ((site_a, "NYC-0001"), (site_b, "LDN-0001"))
    ]


def test_identified_job_file_needs_contacts_scope_like_the_export(
    client, study, people, staff_user, sent
):
    """An identified export through the API needs a token with 'contacts' as well as
    'export'; its background file should need the same to be downloaded."""
    pi = staff_user(study=study, role="pi", username="the-pi")
    job = export_job_start(
        user=pi, study=study, spec=ExportSpec(identified=True, reason="Linking to clinic records.")
    )
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == DatasetExportJob.Status.DONE
    _, export_only = staff_token_create(user=pi, name="script", scopes=["export"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {export_only}"}
    # control: starting the same identified export with this token is refused
    start = client.get(
        f"/api/v1/studies/{study.slug}/export/?identified=true&reason=Linking+to+clinic+records",
        **auth,
    )
    assert start.status_code == 403, start.content
    reply = client.get(f"/api/v1/export-jobs/{job.pk}/download/", **auth)
    body = b"".join(reply.streaming_content) if reply.streaming else reply.content
    assert reply.status_code == 403, (reply.status_code, body[:200])


@pytest.fixture
def mixed(study, db):
    """A PI of another study who is a researcher in ``study``."""
    other = study_create_from_template(
        slug="other", name="Other study", sites=[("CHI", "Chicago", "America/Chicago")]
    )
    user = UserFactory(username="pi-elsewhere")
    staff_role_assign(user=user, study=other, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    staff_role_assign(user=user, study=study, role=StaffRole.Role.RESEARCHER)
    return user


def test_researcher_in_a_study_cannot_change_its_settings_even_if_pi_elsewhere(
    client, study, mixed
):
    client.force_login(mixed)
    url = reverse("admin:surveys_study_change", args=[study.pk])
    page = client.get(url)
    assert page.status_code == 200
    data = form_data(body_of(page), "study_form")
    assert data, "no editable study form: read-only (as it should be)"
    data["export_id"] = ["study_id"]
    data["alert_email"] = ["researcher@example.org"]
    client.post(url, data)
    study.refresh_from_db()
    assert (study.export_id, study.alert_email) != ("study_id", "researcher@example.org")


def test_researcher_in_a_study_cannot_send_now_even_if_pi_elsewhere(
    client, study, people, mixed
):
    Assignment.objects.filter(participant__in=people, wave__slug="m1").update(
        status=Assignment.Status.OPEN
    )
    queued = Message.objects.filter(
        assignment__participant__in=people, status=Message.Status.QUEUED
    )
    assert queued.exists()
    far = timezone.now() + timedelta(days=5)
    queued.update(scheduled_at=far)
    client.force_login(mixed)
    listing = reverse("admin:surveys_message_changelist")
    client.post(
        listing,
        {
            "action": "send_now",
            "_selected_action": [str(pk) for pk in queued.values_list("pk", flat=True)],
            "index": "0",
        },
    )
    moved = Message.objects.filter(
        assignment__participant__in=people, scheduled_at__lt=far - timedelta(days=1)
    )
    assert not moved.exists(), f"{moved.count()} message(s) moved by a researcher"
