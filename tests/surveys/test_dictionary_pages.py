"""The data dictionary in the admin (upload, download, preview) and the API."""

from pathlib import Path

import pytest
from django.urls import reverse

from surveys.dictionary import COLUMNS
from surveys.models import Instrument, InstrumentVersion, StaffRole

FIXTURES = Path(__file__).parent / "fixtures"
REDCAP = (FIXTURES / "redcap_dictionary.csv").read_text(encoding="utf-8")
WITH_FILE = (FIXTURES / "redcap_dictionary_with_file.csv").read_text(encoding="utf-8")


@pytest.fixture
def pi(staff_user, study):
    return staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")


def _upload(client, study, text, language="en"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("admin:surveys_study_dictionary_import", args=[study.pk]),
        {"file": SimpleUploadedFile("dictionary.csv", text.encode("utf-8")), "language": language},
    )


def test_a_pi_uploads_a_redcap_dictionary_and_sees_what_it_did(client, pi, study):
    client.force_login(pi)
    page = _upload(client, study, REDCAP)
    assert page.status_code == 200
    assert "What the import did" in page.text
    assert "created" in page.text
    assert Instrument.objects.filter(study=study, slug="enrolment").exists()


def test_an_upload_with_a_file_field_lists_the_problem_and_changes_nothing(client, pi, study):
    client.force_login(pi)
    before = InstrumentVersion.objects.count()
    page = _upload(client, study, WITH_FILE)
    assert page.status_code == 200
    assert "Nothing was imported" in page.text
    assert "consent_scan: file upload fields are not supported" in page.text
    assert InstrumentVersion.objects.count() == before


def test_a_file_that_is_not_utf8_is_refused_plainly(client, pi, study):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(pi)
    page = client.post(
        reverse("admin:surveys_study_dictionary_import", args=[study.pk]),
        {"file": SimpleUploadedFile("d.csv", b"\xff\xfe\x00bad"), "language": "en"},
    )
    assert "not UTF-8" in page.text


def test_researchers_download_but_cannot_upload(client, researcher, study):
    client.force_login(researcher)
    download = client.get(reverse("admin:surveys_study_dictionary_export", args=[study.pk]))
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert download.content.decode().startswith('"Variable / Field Name"')
    upload = client.get(reverse("admin:surveys_study_dictionary_import", args=[study.pk]))
    assert upload.status_code == 404


def test_download_in_spanish(client, pi, study):
    client.force_login(pi)
    text = client.get(
        reverse("admin:surveys_study_dictionary_export", args=[study.pk]), {"language": "es"}
    ).content.decode()
    assert "¿" in text


def test_preview_shows_an_imported_redcap_instrument_as_participants_read_it(client, pi, study):
    client.force_login(pi)
    _upload(client, study, REDCAP)
    version = InstrumentVersion.objects.get(instrument__study=study, instrument__slug="enrolment")
    page = client.get(reverse("admin:surveys_instrumentversion_preview", args=[version.pk]))
    assert page.status_code == 200
    for item in version.items.all():
        assert item.variable in page.text
    assert "matrix:" in page.text or not version.items.exclude(matrix_group="").exists()


def test_preview_of_the_battery_in_spanish(client, pi, study):
    client.force_login(pi)
    version = Instrument.objects.get(study=study, slug="followup").current_version
    page = client.get(
        reverse("admin:surveys_instrumentversion_preview", args=[version.pk]), {"language": "es"}
    )
    assert page.status_code == 200
    assert "Narcóticos Anónimos" in page.text


def test_api_download_and_import(client, pi, study):
    client.force_login(pi)
    csv_text = client.get(f"/api/v1/studies/{study.slug}/dictionary/").content.decode()
    assert csv_text.splitlines()[0].count(",") >= len(COLUMNS) - 1
    ok = client.post(
        f"/api/v1/studies/{study.slug}/dictionary/",
        {"csv": REDCAP},
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.json()
    assert {form["instrument"] for form in ok.json()} >= {"enrolment"}
    bad = client.post(
        f"/api/v1/studies/{study.slug}/dictionary/",
        {"csv": WITH_FILE},
        content_type="application/json",
    )
    assert bad.status_code == 400
    error = bad.json()["errors"][0]
    assert set(error) == {"line", "column", "message"} and error["line"] > 1


def test_api_import_is_for_pis_only(client, researcher, study):
    client.force_login(researcher)
    response = client.post(
        f"/api/v1/studies/{study.slug}/dictionary/",
        {"csv": REDCAP},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert not Instrument.objects.filter(slug="enrolment").exists()
