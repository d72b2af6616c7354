"""Dataset exports from the admin and manage.py: scoped, filtered, streamed, audited, and with
no identifier in any byte."""

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from surveys.models import AuditEvent
from surveys.services import participant_status_change

CONTACTS = {
    "NYC-0001": {"first_name": "Zebulon", "email": "zeb@example.org", "phone": "+12125550111"},
    "LDN-0001": {"first_name": "Philippa", "email": "pip@example.org", "phone": "+442079460999"},
}


@pytest.fixture
def people(site_a, site_b, enrol):
    enrolled = timezone.localdate() - timezone.timedelta(days=40)
    a = enrol(site=site_a, code="NYC-0001", enrolled_on=enrolled, contact=CONTACTS["NYC-0001"])
    b = enrol(site=site_b, code="LDN-0001", enrolled_on=enrolled, contact=CONTACTS["LDN-0001"])
    return a, b


def download(client, study, **form) -> tuple[object, bytes]:
    reply = client.post(reverse("admin:surveys_study_export", args=[study.pk]), form)
    body = b"".join(reply.streaming_content) if reply.streaming else reply.content
    return reply, body


def test_a_researcher_downloads_the_long_dataset_without_identifiers(
    client, study, people, researcher
):
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_study_export", args=[study.pk]))
    assert page.status_code == 200 and "pseudonymous ID" in page.text
    reply, body = download(client, study, shape="long")
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/csv")
    assert reply["Content-Disposition"].startswith(f'attachment; filename="{study.slug}_long_')
    frame = pd.read_csv(io.BytesIO(body))
    assert len(frame) == 10 and frame["pid"].nunique() == 2  # 2 people x 5 waves
    assert set(frame["site"]) == {"NYC", "LDN"}
    text = body.decode().lower()
    for contact in CONTACTS.values():
        for value in contact.values():
            assert value.lower() not in text and value.lstrip("+") not in text
    for code in CONTACTS:
        assert code.lower() not in text
    event = AuditEvent.objects.get(action="dataset_export")
    assert event.user == researcher and event.study == study
    assert event.details["shape"] == "long" and event.details["rows"] == 10
    assert event.details["identified"] is False


def test_a_coordinator_exports_only_their_sites(client, study, people, coordinator_a):
    client.force_login(coordinator_a)
    _, body = download(client, study, shape="wide")
    frame = pd.read_csv(io.BytesIO(body))
    assert list(frame["site"]) == ["NYC"]
    page = client.get(reverse("admin:surveys_study_export", args=[study.pk])).text
    assert "LDN" not in page  # the other site is not offered as a filter either


def test_filters_narrow_the_rows_and_are_audited(client, study, people, researcher):
    participant_status_change(participant=people[1], status="withdrawn", reason="x")
    client.force_login(researcher)
    _, body = download(client, study, shape="long", waves=["baseline", "m1"], statuses=["active"])
    frame = pd.read_csv(io.BytesIO(body))
    assert sorted(frame["wave"]) == ["baseline", "m1"] and set(frame["site"]) == {"NYC"}
    details = AuditEvent.objects.get(action="dataset_export").details
    assert details["waves"] == ["baseline", "m1"] and details["statuses"] == ["active"]


def test_a_bad_choice_gets_a_clear_error_and_nothing_is_exported(client, study, researcher):
    client.force_login(researcher)
    reply, _ = download(
        client, study, shape="long", enrolled_from="2026-05-01", enrolled_to="2026-01-01"
    )
    assert reply.status_code == 200
    assert "The end of the enrolment range is before its start." in reply.content.decode()
    assert not AuditEvent.objects.filter(action="dataset_export").exists()


def test_nobody_outside_the_study_exports_it(client, study, people, staff_user):
    from recovery.services import study_create_from_template

    other = study_create_from_template(slug="other", name="Other", sites=[("X", "X", "UTC")])
    stranger = staff_user(study=other, role="pi", username="stranger")
    client.force_login(stranger)
    assert client.get(reverse("admin:surveys_study_export", args=[study.pk])).status_code == 404
    reply, _ = download(client, study, shape="long")
    assert reply.status_code == 404
    assert not AuditEvent.objects.filter(action="dataset_export").exists()


def test_manage_py_export_dataset_writes_the_file_and_is_audited(study, people, tmp_path):
    out = tmp_path / "wide.csv"
    call_command("export_dataset", "--study", study.slug, "--shape", "wide", "--out", str(out))
    frame = pd.read_csv(out)
    assert len(frame) == 2 and "pid" in frame.columns
    event = AuditEvent.objects.get(action="dataset_export")
    assert event.user is None and event.details["by"] == "manage.py"
    with pytest.raises(CommandError, match="not built yet"):
        call_command("export_dataset", "--study", study.slug, "--format", "sav", "--out", "x")
    with pytest.raises(CommandError, match="No study"):
        call_command("export_dataset", "--study", "nope", "--out", str(out))
