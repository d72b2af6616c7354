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
    reply, body = download(client, study, shape="long", format="csv")
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
    _, body = download(client, study, shape="wide", format="csv")
    frame = pd.read_csv(io.BytesIO(body))
    assert list(frame["site"]) == ["NYC"]
    page = client.get(reverse("admin:surveys_study_export", args=[study.pk])).text
    assert "LDN" not in page  # the other site is not offered as a filter either


def test_filters_narrow_the_rows_and_are_audited(client, study, people, researcher):
    participant_status_change(participant=people[1], status="withdrawn", reason="x")
    client.force_login(researcher)
    _, body = download(
        client, study, shape="long", format="csv", waves=["baseline", "m1"], statuses=["active"]
    )
    frame = pd.read_csv(io.BytesIO(body))
    assert sorted(frame["wave"]) == ["baseline", "m1"] and set(frame["site"]) == {"NYC"}
    details = AuditEvent.objects.get(action="dataset_export").details
    assert details["waves"] == ["baseline", "m1"] and details["statuses"] == ["active"]


def test_a_bad_choice_gets_a_clear_error_and_nothing_is_exported(client, study, researcher):
    client.force_login(researcher)
    reply, _ = download(
        client,
        study,
        shape="long",
        format="csv",
        enrolled_from="2026-05-01",
        enrolled_to="2026-01-01",
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
    with pytest.raises(CommandError, match="No study"):
        call_command("export_dataset", "--study", "nope", "--out", str(out))


def _answered(people):
    """A completed baseline for the NYC participant, with a choice and a count."""
    from surveys.models import Response

    person = people[0]
    baseline = person.assignments.get(wave__slug="baseline")
    version = baseline.wave.instruments.get().versions.get()
    Response.objects.create(
        assignment=baseline, instrument=version.instrument, instrument_version=version,
        answers={"gender": "2", "age": 34}, status="submitted",
        started_at=baseline.opens_at, submitted_at=baseline.opens_at,
    )  # fmt: skip
    baseline.status, baseline.completed_at = "completed", baseline.opens_at
    baseline.save(update_fields=["status", "completed_at"])


@pytest.mark.parametrize("fmt", ["xlsx", "sav", "dta", "parquet"])
def test_every_format_reads_back_with_the_same_values_labels_and_rows(study, people, tmp_path, fmt):
    import pyarrow.parquet as pq
    import pyreadstat

    _answered(people)
    csv = tmp_path / "long.csv"
    call_command("export_dataset", "--study", study.slug, "--out", str(csv))
    expected = pd.read_csv(csv)
    out = tmp_path / f"long.{fmt}"
    call_command("export_dataset", "--study", study.slug, "--format", fmt, "--out", str(out))
    if fmt == "xlsx":
        data = pd.read_excel(out, sheet_name="data")
        book = pd.read_excel(out, sheet_name="codebook")
        assert "gender" in set(book["name"]) and "pid" in set(book["name"])
    elif fmt == "parquet":
        data = pd.read_parquet(out)
        schema = pq.read_schema(out)
        assert str(schema.field("site").type).startswith("dictionary")  # a category
        assert str(schema.field("age").type) == "int64"  # nullable integers stay integers
        # waves are ordered as in the study, not alphabetically (m12 after m3)
        active = study.waves.filter(is_active=True).order_by("position")
        waves = list(active.values_list("slug", flat=True))
        assert data["wave"].cat.ordered and list(data["wave"].cat.categories) == waves
        assert sorted(waves) != waves
        assert list(data.sort_values(["pid", "wave"])["wave"].iloc[:5]) == waves
    else:
        if fmt == "sav":  # missing codes declared as such: read them as values here
            data, info = pyreadstat.read_sav(str(out), user_missing=True)
        else:
            data, info = pyreadstat.read_dta(str(out))
        labels = dict(zip(info.column_names, info.column_labels, strict=True))
        assert labels["age"] and labels["gender"]
        gender_labels = info.variable_value_labels["gender"]
        assert gender_labels[2] and gender_labels[-99].startswith("Wave missed")
        if fmt == "sav":
            assert info.missing_ranges["gender"] == [{"lo": -99.0, "hi": -93.0}]
    assert len(data) == len(expected) == 10
    assert list(data["pid"]) == list(expected["pid"])
    row = data[(data["wave"] == "baseline") & (data["site"] == "NYC")].iloc[0]
    want = expected[(expected["wave"] == "baseline") & (expected["site"] == "NYC")].iloc[0]
    assert float(row["age"]) == float(want["age"]) == 34
    assert float(row["gender"]) == float(want["gender"]) == 2
    body = out.read_bytes().lower()
    for contact in CONTACTS.values():
        for value in contact.values():
            assert value.lower().encode() not in body
    for code in CONTACTS:
        assert code.lower().encode() not in body


def test_the_admin_offers_every_format(client, study, people, researcher):
    client.force_login(researcher)
    reply, body = download(client, study, shape="wide", format="sav")
    assert reply.status_code == 200 and reply["Content-Type"] == "application/x-spss-sav"
    assert reply["Content-Disposition"].endswith('.sav"')
    assert body[:4] == b"$FL2"  # an SPSS system file


def test_only_a_pi_with_a_reason_exports_identified_data(
    client, study, people, researcher, staff_user
):
    pi = staff_user(study=study, role="pi", username="the-pi")
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_study_export", args=[study.pk])).text
    assert "Identified export" not in page
    reply, body = download(client, study, shape="long", format="csv", identified="on")
    frame = pd.read_csv(io.BytesIO(body))
    assert "study_id" not in frame.columns  # the field is not there for a researcher
    client.force_login(pi)
    reply, _ = download(client, study, shape="long", format="csv", identified="on", reason="x")
    assert "Say why identified data is needed" in reply.content.decode()
    reason = "Linking to the clinic's records for the 12-month follow-up, approved by the IRB."
    reply, body = download(
        client, study, shape="wide", format="csv", identified="on", reason=reason
    )
    assert "_IDENTIFIED_" in reply["Content-Disposition"]
    frame = pd.read_csv(io.BytesIO(body))
    assert sorted(frame["study_id"]) == ["LDN-0001", "NYC-0001"]
    text = body.decode().lower()
    for contact in CONTACTS.values():  # never contact details, even identified
        for value in contact.values():
            assert value.lower() not in text
    event = AuditEvent.objects.filter(action="dataset_export").latest("at")
    assert event.user == pi and event.details["identified"] is True
    assert event.details["reason"] == reason


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_codebooks_missing_codes_read_without_a_formula_guard(study, people, tmp_path, fmt):
    out = tmp_path / f"codebook.{fmt}"
    call_command(
        "export_dataset", "--study", study.slug, "--shape", "codebook", "--format", fmt,
        "--out", str(out),
    )  # fmt: skip
    book = pd.read_csv(out) if fmt == "csv" else pd.read_excel(out, sheet_name="data")
    cell = book.set_index("name").loc["gender", "missing_codes"]
    assert cell.startswith("(-99) Wave missed") and "(-97) Not shown" in cell
