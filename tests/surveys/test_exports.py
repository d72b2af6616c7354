"""Dataset exports from the admin and manage.py: scoped, filtered, streamed, audited, and with
no identifier in any byte."""

import io
import uuid

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


def test_an_instrument_filter_keeps_its_items_and_waves_everywhere(
    client, study, people, researcher, tmp_path
):
    """Found by review: issue 7 asks for an instrument filter, and no export path had one.
    The admin's form, manage.py and the API narrow the dataset to the instruments chosen: only
    their items, only the waves that have them; audited; an unknown one is refused."""
    client.force_login(researcher)
    _, body = download(client, study, shape="long", format="csv", instruments=["followup"])
    frame = pd.read_csv(io.BytesIO(body))
    assert sorted(set(frame["wave"])) == ["m1", "m12", "m3", "m6"]
    assert "gender" not in frame.columns and "age" not in frame.columns  # baseline's items
    assert "meetings_total" in frame.columns
    assert AuditEvent.objects.get(action="dataset_export").details["instruments"] == ["followup"]
    reply, _ = download(client, study, shape="long", format="csv", instruments=["nope"])
    assert "Select a valid choice. nope" in reply.content.decode()

    out = tmp_path / "baseline.csv"
    call_command(
        "export_dataset", "--study", study.slug, "--instrument", "baseline", "--out", str(out)
    )
    frame = pd.read_csv(out)
    assert set(frame["wave"]) == {"baseline"} and "gender" in frame.columns
    assert "meetings_total" not in frame.columns
    with pytest.raises(CommandError, match="Not instruments of this study's waves: nope"):
        call_command(
            "export_dataset", "--study", study.slug, "--instrument", "nope", "--out", str(out)
        )

    api = f"/api/v1/studies/{study.slug}/export/"
    reply = client.get(api, {"instrument": "followup", "shape": "wide"})
    assert reply.status_code == 200, reply.content[:500]
    wide = pd.read_csv(io.BytesIO(b"".join(reply.streaming_content)))
    assert "meetings_total_m1" in wide.columns and "gender_baseline" not in wide.columns
    reply = client.get(api, {"instrument": "nope"})
    assert reply.status_code == 400 and "instrument" in reply.json()["errors"]


@pytest.mark.parametrize("fmt", ["xlsx", "parquet", "sav", "dta"])
def test_value_labels_are_asked_for_a_csv_file_only(client, study, people, researcher, fmt):
    """Found by review: "value labels instead of codes" was offered for every format, taken
    and audited, and only a CSV file had them: an Excel or Parquet file came with codes, as if
    it had not been asked. Refused with a word on where the labels are; nothing exported."""
    client.force_login(researcher)
    reply, _ = download(client, study, shape="long", format=fmt, labels="on")
    assert "Value labels instead of codes are for CSV files." in reply.content.decode()
    reply = client.get(f"/api/v1/studies/{study.slug}/export/", {"format": fmt, "labels": "true"})
    assert reply.status_code == 400 and "labels" in reply.json()["errors"]
    assert not AuditEvent.objects.filter(action="dataset_export").exists()
    reply, body = download(client, study, shape="long", format="csv", labels="on")
    assert reply.status_code == 200 and "Not yet due" in body.decode()


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
            assert info.missing_ranges["gender"] == [{"lo": -99.0, "hi": -92.0}]
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


# --- An item marked as an identifier only in a later version ---------------------------------

HOME_PHONE = 2125550142
PHONE_LABEL = "Home phone number (digits)"


def _baseline_items(baseline, *, identifier: bool) -> list[dict]:
    from surveys.instruments import version_items_as_dicts

    items = [
        item
        for item in version_items_as_dicts(baseline.current_version)
        if item["variable"] != "home_phone"
    ]
    items.append(
        {
            "variable": "home_phone",
            "kind": "integer",
            "label": {"en": PHONE_LABEL},
            "identifier": identifier,
        }
    )
    for position, item in enumerate(items, start=1):
        item["position"] = position
    return items


def _export_bytes(user, study, **spec) -> bytes:
    from surveys.exports import ExportSpec, dataset_export

    export = dataset_export(user=user, study=study, spec=ExportSpec(**spec))
    return b"".join(c.encode() if isinstance(c, str) else c for c in export.chunks)


def _read(body: bytes, fmt: str, tmp_path) -> pd.DataFrame:
    import pyreadstat

    if fmt == "csv":
        return pd.read_csv(io.BytesIO(body))
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(body))
    if fmt == "xlsx":
        return pd.read_excel(io.BytesIO(body), sheet_name="data")
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(body)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    return reader(str(path))[0]


def _phone_answered(study, site, enrol, *, identifier: bool):
    """Ana's baseline, with her home phone, answered while the question is marked as an
    identifier or not."""
    from surveys.instruments import instrument_items_set
    from surveys.models import Instrument
    from surveys.submission import response_submit
    from tests.surveys.test_datasets import BASELINE_ANSWERS

    baseline = Instrument.objects.get(study=study, slug="baseline")
    items = _baseline_items(baseline, identifier=identifier)
    instrument_items_set(instrument=baseline, items=items)
    ana = enrol(site=site, enrolled_on=timezone.localdate() - timezone.timedelta(days=3))
    answers = {k: v for k, v in BASELINE_ANSWERS.items() if k not in ("birth_year", "story")}
    return response_submit(
        assignment=ana.assignments.get(wave__slug="baseline", occurrence=0),
        instrument=baseline,
        answers={**answers, "home_phone": HOME_PHONE},
        client_id=uuid.uuid4(),
    ).response


def _phone_marked(response, *, identifier: bool) -> None:
    """The question marked (or unmarked) as an identifier: a new version, since the one
    answered has answers."""
    from surveys.instruments import instrument_items_set

    baseline = response.instrument
    baseline.refresh_from_db()
    items = _baseline_items(baseline, identifier=identifier)
    instrument_items_set(instrument=baseline, items=items)
    assert baseline.current_version.pk != response.instrument_version_id


@pytest.fixture
def phone_marked_later(study, site_a, enrol, researcher):
    """Ana answered the baseline's home phone question when it was not marked as an
    identifier; a de-identified export then kept her lines; the PI then marked the question
    as an identifier."""
    response = _phone_answered(study, site_a, enrol, identifier=False)
    before = _export_bytes(researcher, study, shape="long")  # kept lines, with the phone
    assert str(HOME_PHONE).encode() in before and b"home_phone" in before
    _phone_marked(response, identifier=True)
    return response


@pytest.mark.parametrize("shape", ["long", "wide"])
def test_an_answer_to_a_question_marked_identifier_later_is_in_no_csv_export(
    study, researcher, phone_marked_later, shape
):
    body = _export_bytes(researcher, study, shape=shape)
    assert b"home_phone" not in body and str(HOME_PHONE).encode() not in body
    assert len(pd.read_csv(io.BytesIO(body))) > 0  # the rest of the data is there
    book = _export_bytes(researcher, study, shape="codebook")
    assert b"home_phone" not in book and PHONE_LABEL.encode() not in book


@pytest.mark.parametrize("fmt", ["parquet", "sav", "dta", "xlsx"])
def test_an_answer_to_a_question_marked_identifier_later_is_in_no_file_export(
    study, researcher, phone_marked_later, tmp_path, fmt
):
    body = _export_bytes(researcher, study, shape="wide", format=fmt)
    data = _read(body, fmt, tmp_path)
    assert len(data) == 1 and "age_baseline" in data.columns
    assert not [name for name in data.columns if "home_phone" in name]
    assert not data.isin([HOME_PHONE, float(HOME_PHONE), str(HOME_PHONE)]).any().any()
    assert str(HOME_PHONE).encode() not in body and b"home_phone" not in body


def test_the_pis_identified_export_still_has_the_answer(study, staff_user, phone_marked_later):
    pi = staff_user(study=study, role="pi", username="the-pi")
    reason = "Calling participants back for the 12-month follow-up, approved by the IRB."
    body = _export_bytes(pi, study, shape="long", identified=True, reason=reason)
    frame = pd.read_csv(io.BytesIO(body))
    assert list(frame.loc[frame["wave"] == "baseline", "home_phone"]) == [HOME_PHONE]


def test_a_researcher_sees_the_answer_hidden_on_the_response_page(
    client, study, researcher, staff_user, phone_marked_later
):
    url = reverse("admin:surveys_response_change", args=[phone_marked_later.pk])
    client.force_login(researcher)
    page = client.get(url).text
    assert PHONE_LABEL in page and "(identifier: hidden)" in page
    assert str(HOME_PHONE) not in page
    client.force_login(staff_user(study=study, role="pi", username="the-pi"))
    assert str(HOME_PHONE) in client.get(url).text


def test_the_analyses_page_does_not_offer_the_question(
    client, study, researcher, phone_marked_later
):
    client.force_login(researcher)
    page = client.get(reverse("admin:recovery_analysisrun_study", args=[study.pk])).text
    assert "Age" in page or "age" in page  # the baseline's covariates are offered
    assert "home_phone" not in page and PHONE_LABEL not in page


def test_a_question_unmarked_later_stays_an_identifier_in_exports_and_the_dictionary(
    study, site_a, enrol, researcher
):
    """Unmarking a question in a new version does not hand out what was answered under the
    mark: the datasets still leave it out, and the data dictionary says so."""
    from surveys.dictionary import dictionary_export

    response = _phone_answered(study, site_a, enrol, identifier=True)
    _phone_marked(response, identifier=False)
    for shape in ("long", "wide", "codebook"):
        body = _export_bytes(researcher, study, shape=shape)
        assert b"home_phone" not in body and str(HOME_PHONE).encode() not in body
    dictionary = pd.read_csv(io.StringIO(dictionary_export(study=study)), dtype=str)
    row = dictionary.set_index("Variable / Field Name").loc["home_phone"]
    assert row["Identifier?"] == "y"


def test_a_question_marked_in_another_instrument_is_an_identifier_in_every_one(
    client, study, site_a, enrol, researcher
):
    """The follow-up asks the same home phone question, marked as an identifier; the baseline's
    copy is not. The dataset puts both in one column, so the baseline's answers stay out too
    (as erasure treats them), on the response page as well, and the dictionary says so."""
    from surveys.dictionary import dictionary_export
    from surveys.instruments import instrument_items_set, version_items_as_dicts
    from surveys.models import Instrument

    response = _phone_answered(study, site_a, enrol, identifier=False)
    followup = Instrument.objects.get(study=study, slug="followup")
    items = version_items_as_dicts(followup.current_version)
    items.append(
        {
            "variable": "home_phone",
            "kind": "integer",
            "label": {"en": PHONE_LABEL},
            "identifier": True,
            "position": len(items) + 1,
        }
    )
    instrument_items_set(instrument=followup, items=items)
    for shape in ("long", "wide", "codebook"):
        body = _export_bytes(researcher, study, shape=shape)
        assert b"home_phone" not in body and str(HOME_PHONE).encode() not in body
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_response_change", args=[response.pk])).text
    assert "(identifier: hidden)" in page and str(HOME_PHONE) not in page
    dictionary = pd.read_csv(io.StringIO(dictionary_export(study=study)), dtype=str)
    rows = dictionary[dictionary["Variable / Field Name"] == "home_phone"]
    assert list(rows["Form Name"]) == ["baseline", "followup"]
    assert list(rows["Identifier?"]) == ["y", "y"]
