"""Enrolment from a CSV file: reading real files, every problem at once, all or nothing, the
preview, the confirmation and who may import."""

import csv
import io
import json
import re
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from surveys import participant_import
from surveys.consent import consent_version_current
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    ConsentVersion,
    Message,
    Participant,
    ParticipantContact,
    Site,
    StaffRole,
)
from surveys.participant_import import MAX_ROWS, participants_import
from tests.factories import UserFactory

IMPORT_URL = "admin:surveys_participant_import"
CONFIRM_URL = "admin:surveys_participant_import_confirm"
TODAY = timezone.localdate()
CONSENTED = (TODAY - timedelta(days=2)).isoformat()

# The columns in an order of their own, and in mixed case: order and case are free.
COLUMNS = [
    "Site",
    "first_name",
    "last_name",
    "EMAIL",
    "phone",
    "preferred_channel",
    "consent_method",
    "consent_date",
    "consent_obtained_by",
    "consent_version",
    "study_id",
    "enrolled_on",
    "timezone",
    "language",
    "alternative_contacts",
    "locator_notes",
]

ROSA = {
    "Site": "NYC",
    "first_name": "Rosa",
    "last_name": "Martínez",
    "EMAIL": "rosa.m@example.org",
    "phone": "+1 212 555 0143",
    "consent_method": "written",
    "consent_date": CONSENTED,
    "locator_notes": "Sister in Queens, call after 6pm",
}
JAMAL = {
    "Site": "NYC",
    "first_name": "Jamal",
    "phone": "(646) 555-0178",
    "consent_method": "verbal",
    "consent_date": CONSENTED,
    "consent_obtained_by": "coordinator-user",
    "language": "es",
}
LEILA = {
    "Site": "nyc",
    "EMAIL": "leila.k@example.org",
    "consent_method": "Electronic",
    "language": "fa",
    "alternative_contacts": "Friend: +1 917 555 0111",
}
AMY = {
    "Site": "LDN",
    "first_name": "Amy",
    "EMAIL": "amy.t@example.org",
    "phone": "+44 7700 900123",
    "preferred_channel": "sms",
    "consent_method": "written",
    "consent_date": CONSENTED,
}


def csv_bytes(rows, *, columns=COLUMNS, delimiter=",", encoding="utf-8", bom=False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return (("\ufeff" if bom else "") + out.getvalue()).encode(encoding)


def problems(result) -> list[tuple[int, str]]:
    return [(problem.line, problem.column) for problem in result.errors]


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Participant, ParticipantContact, Consent, Assignment, Message, AuditEvent)
    }


@pytest.fixture(autouse=True)
def consent_version(study):
    """The study's consent text (the template may bring one of its own)."""
    if consent_version_current(study=study) is None:
        ConsentVersion.objects.create(
            study=study, version="1.0", approved_on=date(2025, 1, 1), texts={"en": "I agree."}
        )
    return consent_version_current(study=study)


@pytest.fixture(autouse=True)
def obtains_consent(coordinator_a):
    """The coordinator named as having obtained consent on some lines."""
    return coordinator_a


@pytest.fixture
def pi(staff_user, study):
    return staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")


def last_numbers(study) -> dict[str, int]:
    return dict(Site.objects.filter(study=study).values_list("code", "last_number"))


# --- The service -----------------------------------------------------------------------------


def test_a_good_file_enrols_everyone_with_study_ids_in_sequence(study, pi, coordinator_a):
    data = csv_bytes([ROSA, JAMAL, LEILA, AMY])
    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)

    assert result.errors == []
    assert [(row.line, row.code) for row in result.rows] == [
        (2, "NYC-0001"),
        (3, "NYC-0002"),
        (4, "NYC-0003"),
        (5, "LDN-0001"),
    ]
    assert last_numbers(study) == {"NYC": 3, "LDN": 1}
    rosa, jamal, leila, amy = (Participant.objects.get(code=row.code) for row in result.rows)

    # Contact details read back (decrypted) exactly as the file had them.
    assert (rosa.contact.first_name, rosa.contact.last_name) == ("Rosa", "Martínez")
    assert (rosa.contact.email, rosa.contact.phone) == ("rosa.m@example.org", "+1 212 555 0143")
    assert rosa.contact.locator_notes == "Sister in Queens, call after 6pm"
    assert leila.contact.alternative_contacts == "Friend: +1 917 555 0111"
    assert jamal.contact.email == ""

    # Defaults: the site's time zone, the study's language, the channel the contacts allow,
    # and today on the participant's clock.
    new_york_today = timezone.localdate(timezone=ZoneInfo("America/New_York"))
    assert (rosa.timezone, rosa.language) == ("America/New_York", "en")
    assert rosa.enrolled_on == new_york_today
    assert (amy.timezone, amy.site.code) == ("Europe/London", "LDN")
    assert (jamal.language, jamal.preferred_channel) == ("es", "sms")
    assert (rosa.preferred_channel, amy.preferred_channel) == ("email", "sms")
    assert leila.language == "fa"

    # Consent per method: staff-obtained ones recorded, e-consent left to the phone.
    written = Consent.objects.get(participant=rosa)
    assert (written.method, written.consented_on.isoformat()) == ("written", CONSENTED)
    assert written.obtained_by == pi  # the importing user by default
    assert written.recorded_by == pi
    assert written.version == consent_version_current(study=study)
    verbal = Consent.objects.get(participant=jamal)
    assert (verbal.method, verbal.obtained_by) == ("verbal", coordinator_a)
    assert leila.consent_pending is True
    assert not Consent.objects.filter(participant=leila).exists()
    assert rosa.consent_pending is False

    # Surveys and invitations, as manual enrolment makes them.
    for participant in (rosa, jamal, leila, amy):
        waves = set(participant.assignments.values_list("wave__slug", flat=True))
        assert {"baseline", "m1", "m3", "m6", "m12"} <= waves
        invitations = Message.objects.filter(
            assignment__participant=participant, sequence=0, status=Message.Status.QUEUED
        )
        assert invitations.exists()
        assert set(invitations.values_list("channel", flat=True)) == {participant.preferred_channel}
    assert result.invitations == Message.objects.filter(sequence=0).count()


def test_every_problem_of_every_line_is_reported_and_nothing_is_saved(study, pi):
    before = counts()
    rows = [
        ROSA,  # line 2: fine, and still not saved
        {**JAMAL, "phone": "555-01"},  # line 3
        {**AMY, "Site": "NYX"},  # line 4
        # line 5: three problems on one line, from three different checks
        {**ROSA, "EMAIL": "rosa@", "phone": "", "consent_date": "15/01/2026", "language": "de"},
        {"Site": "NYC", "first_name": "Nobody", "consent_method": "signed"},  # line 6
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)

    assert [str(problem) for problem in result.errors] == [
        "line 3, phone: Enter a phone number with at least 9 digits, e.g. +1 555 010 4477.",
        "line 4, site: No site of this study has the code NYX (your sites: LDN, NYC).",
        "line 5, language: Value 'de' is not a valid choice. Use one of: en, es, fa.",
        "line 5, email: Enter a valid email address.",
        "line 5, consent_date: 15/01/2026 is not a valid date; write it YYYY-MM-DD (e.g. "
        "2026-01-31).",
        "line 6, email/phone: Give an e-mail address or a phone number (or both).",
        "line 6, consent_method: Choose how the participant consented. "
        "Use one of: written, verbal, electronic.",
    ]
    assert result.rows == [] and not result.committed
    assert counts() == before
    assert last_numbers(study) == {"NYC": 0, "LDN": 0}


def test_a_problem_found_while_enrolling_undoes_the_lines_already_enrolled(study, pi, monkeypatch):
    """All or nothing even past the checks: the third enrolment fails after two succeeded."""
    from django.core.exceptions import ValidationError

    real_enrol = participant_import.participant_enrol
    calls = []

    def enrol_then_fail(**kwargs):
        calls.append(kwargs["participant"])
        participant = real_enrol(**kwargs)
        if len(calls) == 3:
            raise ValidationError({"phone": "The provider refused this number."})
        return participant

    monkeypatch.setattr(participant_import, "participant_enrol", enrol_then_fail)
    before = counts()
    data = csv_bytes([ROSA, JAMAL, LEILA, AMY])
    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)

    assert [str(p) for p in result.errors] == ["line 4, phone: The provider refused this number."]
    assert len(calls) == 4  # the other lines were still tried, to report them too
    assert counts() == before
    assert last_numbers(study) == {"NYC": 0, "LDN": 0}


def test_the_preview_shows_the_enrolment_and_saves_nothing(study, pi):
    before = counts()
    data = csv_bytes([ROSA, JAMAL, AMY])
    result = participants_import(study=study, user=pi, file_bytes=data, commit=False)

    assert result.errors == [] and not result.committed
    assert [row.code for row in result.rows] == ["NYC-0001", "NYC-0002", "LDN-0001"]
    assert all(row.code_generated and row.participant_id is None for row in result.rows)
    rosa = result.rows[0]
    assert (rosa.email, rosa.phone, rosa.name) == (
        "r•••@example.org",
        "+• ••• ••• ••43",
        "R••• M•••",
    )
    assert result.assignments > 0 and result.invitations > 0
    assert counts() == before
    assert last_numbers(study) == {"NYC": 0, "LDN": 0}
    # The same file imports with the same study IDs.
    committed = participants_import(study=study, user=pi, file_bytes=data, commit=True)
    assert [row.code for row in committed.rows] == ["NYC-0001", "NYC-0002", "LDN-0001"]


@pytest.mark.parametrize(
    ("encoding", "bom", "delimiter", "read_as"),
    [
        ("utf-8", True, ";", "UTF-8 with BOM"),
        ("utf-8", False, ",", "UTF-8"),
        ("cp1252", False, ";", "Windows-1252"),
        ("cp1252", False, ",", "Windows-1252"),
        ("utf-16", False, "\t", "UTF-16"),
    ],
)
def test_files_as_excel_saves_them_are_read(study, pi, encoding, bom, delimiter, read_as):
    zoe = {**ROSA, "first_name": "Zoë", "last_name": "Ñúñez; “Nuñi”", "EMAIL": "zoe@example.org"}
    data = csv_bytes([zoe, JAMAL], delimiter=delimiter, encoding=encoding, bom=bom)
    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)

    assert result.errors == []
    assert result.encoding.startswith(read_as)
    contact = Participant.objects.get(code=result.rows[0].code).contact
    assert (contact.first_name, contact.last_name) == ("Zoë", "Ñúñez; “Nuñi”")


def test_quoted_line_breaks_blank_lines_and_lf_endings_are_read(study, pi):
    text = (
        "site,email,consent_method,consent_date,locator_notes\n"
        f'NYC,a@example.org,written,{CONSENTED},"Lives with aunt,\nsecond floor"\n'
        f"NYC,b@example.org,written,{CONSENTED},\n"
        "\n"
        f"NYC,c@example.org,written,{CONSENTED},,extra\n"
        ",,,,\n"
        "\n\n"
    )
    result = participants_import(study=study, user=pi, file_bytes=text.encode(), commit=False)
    # A cell with a line break is one spreadsheet line: the bad row is line 5, not 6.
    assert [str(p) for p in result.errors] == [
        "line 5: 6 values where the header names 5 columns (a stray comma or a missing quote?)."
    ]
    good = participants_import(
        study=study, user=pi, file_bytes=text.replace(",,extra", ",").encode(), commit=True
    )
    assert good.errors == []
    notes = Participant.objects.get(code=good.rows[0].code).contact.locator_notes
    assert notes == "Lives with aunt,\nsecond floor"


def test_the_same_person_twice_in_a_file_is_refused(study, pi):
    rows = [
        ROSA,
        {**AMY, "EMAIL": "Rosa.M@Example.org "},  # the same address, typed differently
        {**JAMAL, "phone": "212-555-0143"},  # Rosa's number without the country code
        {**LEILA, "study_id": "NYC-0100"},
        {**ROSA, "EMAIL": "other@example.org", "phone": "", "study_id": "NYC-0100"},
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)
    assert [str(p) for p in result.errors] == [
        "line 3, email: The same e-mail address as line 2.",
        "line 4, phone: The same phone number as line 2.",
        "line 6, study_id: NYC-0100 is also on line 5.",
    ]
    assert not Participant.objects.exists()


def test_a_study_id_taken_in_the_study_or_a_person_enrolled_before_is_refused(
    study, site_a, pi, enrol
):
    enrol(site=site_a, code="NYC-0007", contact={"email": "rosa.m@example.org"})
    rows = [{**JAMAL, "study_id": "NYC-0007"}, ROSA]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)
    assert [str(p) for p in result.errors] == [
        "line 2, study_id: NYC-0007 is already taken in this study.",
        "line 3, email: A participant of this study already has this e-mail address (NYC-0007).",
    ]
    assert Participant.objects.count() == 1


def test_given_study_ids_are_kept_and_generated_ones_pass_over_them(study, pi):
    rows = [ROSA, {**JAMAL, "study_id": "NYC-0001"}, AMY]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)
    assert [(row.line, row.code, row.code_generated) for row in result.rows] == [
        (2, "NYC-0002", True),
        (3, "NYC-0001", False),
        (4, "LDN-0001", True),
    ]


def test_a_study_id_with_another_sites_prefix_is_refused(study, pi):
    before = counts()
    rows = [
        {**ROSA, "study_id": "LDN-0007"},  # line 2: a London ID for a New York participant
        {**JAMAL, "study_id": "ldn-0008"},  # line 3: in lower case too
        {**AMY, "study_id": "LDN-0009"},  # line 4: London's own: fine
        {**LEILA, "study_id": "NYC-LDN-1"},  # line 5: New York's prefix: fine
        {**AMY, "EMAIL": "amy2@example.org", "phone": "+44 7700 900124", "study_id": "P-0001"},
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)

    assert [str(problem) for problem in result.errors] == [
        "line 2, study_id: LDN-0007 starts with the code of site LDN, but the row is of site "
        "NYC: its study IDs start NYC- (empty: the site's next).",
        "line 3, study_id: ldn-0008 starts with the code of site LDN, but the row is of site "
        "NYC: its study IDs start NYC- (empty: the site's next).",
    ]
    assert counts() == before
    fixed = [{**ROSA, "study_id": "NYC-0007"}, {**JAMAL, "study_id": ""}, *rows[2:]]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(fixed), commit=True)
    assert result.errors == []
    assert [row.code for row in result.rows] == [
        "NYC-0007",
        "NYC-0001",
        "LDN-0009",
        "NYC-LDN-1",
        "P-0001",
    ]


def test_a_coordinator_imports_only_at_their_own_sites(study, coordinator_a):
    rows = [ROSA, AMY, {**JAMAL, "Site": "NYX"}]
    result = participants_import(
        study=study, user=coordinator_a, file_bytes=csv_bytes(rows), commit=True
    )
    assert [str(p) for p in result.errors] == [
        "line 3, site: LDN is not one of your sites (NYC).",
        "line 4, site: No site of this study has the code NYX (your sites: NYC).",
    ]
    assert not Participant.objects.exists()
    ok = participants_import(
        study=study, user=coordinator_a, file_bytes=csv_bytes([ROSA, JAMAL]), commit=True
    )
    assert ok.errors == [] and Participant.objects.filter(site__code="NYC").count() == 2


def test_consent_rules_are_those_of_manual_enrolment(study, pi, researcher):
    rows = [
        {**LEILA, "consent_date": CONSENTED},
        {**ROSA, "consent_date": (TODAY + timedelta(days=1)).isoformat()},
        {**JAMAL, "consent_obtained_by": "nobody-here"},
        {**AMY, "consent_version": "9.9"},
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)
    current = consent_version_current(study=study).version
    assert [str(p) for p in result.errors] == [
        "line 2, consent_date: Leave empty for electronic consent: the phone records it.",
        "line 3, consent_date: The date of consent cannot be in the future.",
        "line 4, consent_obtained_by: Nobody called nobody-here has a role in this study.",
        f"line 5, consent_version: 9.9 is not a consent version of this study ({current}).",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file: The file is empty."),
        (b"\xef\xbb\xbf\r\n\r\n", "file: The file is empty."),
        (b"PK\x03\x04\x14\x00\x06\x00 workbook", "file: This is an Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "file: This is an old Excel workbook (.xls)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "file: This is not a text file"),
        (
            b"NYC,rosa@example.org,written\r\n",
            "line 1: Line 1 is not a header row: none of its cells names a column.",
        ),
        (
            b"site,email,consent_method,shoe_size,Favourite Colour\r\n",
            "line 1: Unknown column(s): shoe_size, Favourite Colour.",
        ),
        (b"site,email,email,consent_method\r\n", "line 1, email: This column appears more"),
        (b"email,phone\r\na@example.org,\r\n", "line 1: Required column(s) missing: site, con"),
        (b"site,consent_method\r\nNYC,written\r\n", "line 1: The file needs an email or a phone"),
        (b"site,email,consent_method\r\n", "file: The file has a header but no participants."),
        (
            b'site,email,consent_method\r\nNYC,"a@example.org,written\r\n',
            'line 2: A quoted value is not closed: a " is missing.',
        ),
    ],
)
def test_a_file_that_cannot_be_used_says_why(study, pi, data, message):
    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)
    assert len(result.errors) >= 1
    assert str(result.errors[0]).startswith(message)
    assert not Participant.objects.exists()


def test_too_many_rows_or_too_big_a_file_is_refused_with_the_limit(study, pi):
    line = f"NYC,a@example.org,written,{CONSENTED}\r\n"
    many = ("site,email,consent_method,consent_date\r\n" + line * (MAX_ROWS + 1)).encode()
    result = participants_import(study=study, user=pi, file_bytes=many, commit=False)
    assert [str(p) for p in result.errors] == [
        f"file: The file has {MAX_ROWS + 1:,} participants; the limit is {MAX_ROWS:,} per "
        "import. Split it into smaller files."
    ]
    big = b"site,email,consent_method,locator_notes\r\n" + b"x" * (3 * 1024 * 1024)
    result = participants_import(study=study, user=pi, file_bytes=big, commit=False)
    assert [str(p) for p in result.errors] == [
        "file: The file is 3.0 MB; the limit is 2 MB. Split it into smaller files."
    ]


def test_a_phone_number_excel_turned_into_a_number_is_explained(study, pi):
    result = participants_import(
        study=study,
        user=pi,
        file_bytes=csv_bytes([{**JAMAL, "phone": "1.21255E+10"}]),
        commit=False,
    )
    assert [(p.line, p.column) for p in result.errors] == [(2, "phone")]
    assert "Excel turned this phone number into a number" in result.errors[0].message


def test_an_enrolment_date_in_the_future_or_before_consent_is_refused(study, pi):
    before = counts()
    tomorrow = TODAY + timedelta(days=2)  # past midnight in every time zone
    day_before_consent = date.fromisoformat(CONSENTED) - timedelta(days=1)
    rows = [
        {**ROSA, "enrolled_on": CONSENTED},  # line 2: enrolled the day they consented: fine
        {**JAMAL, "enrolled_on": tomorrow.isoformat()},  # line 3
        {**AMY, "Site": "NYC", "enrolled_on": day_before_consent.isoformat()},  # line 4
        {**LEILA, "enrolled_on": day_before_consent.isoformat()},  # line 5: e-consent, no date
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)

    latest = max(TODAY, timezone.localdate(timezone=ZoneInfo("America/New_York")))
    assert [str(problem) for problem in result.errors] == [
        f"line 3, enrolled_on: {tomorrow.isoformat()} is in the future: write the day the "
        f"participant was enrolled, {latest.isoformat()} at the latest.",
        f"line 4, enrolled_on: {day_before_consent.isoformat()} is before the consent date "
        f"({CONSENTED}): nobody is enrolled before they consent.",
    ]
    assert counts() == before


def test_a_phone_number_with_letters_says_letters_are_not_allowed(study, pi):
    result = participants_import(
        study=study,
        user=pi,
        file_bytes=csv_bytes([ROSA, {**JAMAL, "phone": "555-CALL-NOW"}]),
        commit=False,
    )
    assert [str(problem) for problem in result.errors] == [
        "line 3, phone: Letters are not allowed in a phone number: write it in digits (spaces "
        "and - ( ) . are fine), e.g. +1 555 010 4477."
    ]


def test_too_long_a_phone_number_name_or_note_says_so_with_the_limit(study, pi):
    before = counts()
    rows = [
        {**ROSA, "phone": "+1 212 555 0143 0143 0143 0143"},  # line 2: 29 after the +
        {**JAMAL, "first_name": "J" * 201, "last_name": "Ñ" * 200},  # line 3: only first_name
        {**AMY, "locator_notes": "x" * 2001, "alternative_contacts": "y" * 2000},  # line 4
        {**ROSA, "EMAIL": "r@example.org", "phone": "", "locator_notes": "z" * 2000},  # line 5
    ]
    result = participants_import(study=study, user=pi, file_bytes=csv_bytes(rows), commit=True)

    assert [str(problem) for problem in result.errors] == [
        "line 2, phone: This phone number is too long: 29 characters, at most 25 (digits, "
        "spaces and - ( ) . after an optional +), e.g. +1 555 010 4477.",
        "line 3, first_name: Too long: 201 characters, at most 200.",
        "line 4, locator_notes: Too long: 2,001 characters, at most 2,000.",
    ]
    assert counts() == before


def test_a_nul_byte_anywhere_is_named_by_line_and_column_and_nothing_is_saved(study, pi):
    """A stray NUL (byte 0) is a damaged line, wherever it is, not a binary file: the service
    names it, the other lines are still checked, and nothing reaches the database (PostgreSQL
    refuses NUL in text)."""
    filler = [{**ROSA, "EMAIL": f"p{i}@example.org", "phone": ""} for i in range(300)]
    rows = [ROSA, {**JAMAL, "first_name": "Ja\x00mal"}, *filler, {**AMY, "Site": "NYC\x00"}]
    data = csv_bytes(rows)
    assert data.index(b"\x00", data.index(b"\x00") + 1) > 8192  # the second one is far in

    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)

    assert problems(result) == [(3, "first_name"), (len(rows) + 1, "site")]
    assert "holds a NUL character" in result.errors[0].message
    assert Participant.objects.count() == 0


def test_a_nul_byte_in_the_study_id_is_a_problem_of_its_line(study, pi):
    result = participants_import(
        study=study,
        user=pi,
        file_bytes=csv_bytes([{**ROSA, "study_id": "NYC\x00-7"}]),
        commit=False,
    )
    assert [(p.line, p.column) for p in result.errors] == [(2, "study_id")]


def test_a_nul_byte_in_the_header_names_the_cell(study, pi):
    data = b"site,em\x00ail,consent_method\r\nNYC,a@example.org,electronic\r\n"
    result = participants_import(study=study, user=pi, file_bytes=data, commit=False)
    assert [str(p) for p in result.errors] == [
        "line 1: The header's cell 2: This value holds a NUL character (an invisible byte 0), "
        "so it is not text: the file is damaged or was exported wrongly. Type the value again "
        "in the spreadsheet and save the file again."
    ]


def _utf16_with_lone_surrogate(rows) -> bytes:
    """UTF-16 (Excel's “Unicode Text”) with a high surrogate and no low one in Jamal's name."""
    data = csv_bytes(rows, delimiter="\t", encoding="utf-16")
    name = "Jamal".encode("utf-16-le")
    return data.replace(name, name[:2] + b"\x3d\xd8" + name[2:], 1)  # J, U+D83D, amal


def test_a_utf16_file_with_a_broken_character_names_its_line_and_column(study, pi):
    data = _utf16_with_lone_surrogate([ROSA, JAMAL])
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-16")

    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)

    assert [str(p) for p in result.errors] == [
        "line 3, first_name: This value holds a broken character (half of a UTF-16 character "
        "pair), so it is not readable text. Type the value again in the spreadsheet and save "
        "the file as “CSV UTF-8”."
    ]
    assert result.encoding == "UTF-16"
    assert Participant.objects.count() == 0


def test_a_utf16_file_cut_short_is_not_readable_text(study, pi):
    data = csv_bytes([ROSA], delimiter="\t", encoding="utf-16")[:-1]  # half a character
    result = participants_import(study=study, user=pi, file_bytes=data, commit=True)
    assert len(result.errors) == 1
    assert str(result.errors[0]).startswith(
        "file: The file is not readable text: it is marked as UTF-16 (Excel’s “Unicode Text”) "
        f"but byte {len(data):,} of {len(data):,} is not UTF-16 (truncated data; was the file "
        "cut short?)."
    )
    assert Participant.objects.count() == 0


# --- The admin pages -------------------------------------------------------------------------


def upload(client, study, data: bytes):
    """What the upload form posts (the study is a hidden field when the user has one)."""
    return client.post(
        reverse(IMPORT_URL),
        {"study": study.pk, "file": SimpleUploadedFile("participants.csv", data, "text/csv")},
    )


def payload_of(page) -> str:
    return re.search(r'name="payload" value="([^"]+)"', page.text).group(1)


def test_the_upload_page_explains_the_columns_and_offers_the_template(client, coordinator_a):
    client.force_login(coordinator_a)
    page = client.get(reverse(IMPORT_URL))
    assert page.status_code == 200
    assert "Import participants from a CSV file" in page.text
    for name in participant_import.COLUMN_NAMES:
        assert f"<code>{name}</code>" in page.text
    assert reverse("admin:surveys_participant_import_template") in page.text
    assert 'type="file"' in page.text


def test_the_template_is_a_header_and_a_fictional_example_that_is_refused_as_it_is(
    client, study, coordinator_a
):
    client.force_login(coordinator_a)
    response = client.get(reverse("admin:surveys_participant_import_template"))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == list(participant_import.COLUMN_NAMES)
    assert len(lines) == 2 and "example.org" in lines[1] and lines[1].startswith("NYC,")
    result = participants_import(
        study=study, user=coordinator_a, file_bytes=response.content, commit=False
    )
    assert [str(p) for p in result.errors] == [
        "line 2: This is the template's example row: delete it before importing."
    ]


def test_the_preview_masks_contacts_and_the_confirmation_imports(client, study, coordinator_a):
    client.force_login(coordinator_a)
    preview = upload(client, study, csv_bytes([ROSA, JAMAL, LEILA]))
    assert preview.status_code == 200
    assert "Nothing has been saved yet" in preview.text
    assert "NYC-0001" in preview.text and "NYC-0003" in preview.text
    assert "r•••@example.org" in preview.text and "R••• M•••" in preview.text
    assert "(•••) •••-••78" in preview.text
    # Not a single identifier in clear, not even in the form that carries the file.
    for identifier in ("rosa.m@example.org", "Martínez", "0143", "Queens", "leila.k"):
        assert identifier not in preview.text
    assert Participant.objects.count() == 0

    done = client.post(reverse(CONFIRM_URL), {"payload": payload_of(preview)}, follow=True)
    assert done.status_code == 200
    assert "3 participants enrolled" in done.text
    assert ">NYC-0001</a>" in done.text and ">NYC-0003</a>" in done.text
    assert "1 will consent on their phone" in done.text
    assert Participant.objects.count() == 3
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PARTICIPANT_IMPORT).count() == 1


def test_a_file_with_problems_shows_them_by_line_and_column(client, study, coordinator_a):
    client.force_login(coordinator_a)
    page = upload(client, study, csv_bytes([ROSA, {**JAMAL, "phone": "12"}, {**AMY}]))
    assert page.status_code == 200
    assert "Nothing was imported: 2 problems on 2 lines" in page.text
    assert re.search(r"<td>line 3</td><td>phone</td><td>Enter a phone number", page.text)
    assert re.search(r"<td>line 4</td><td>site</td><td>LDN is not one of your sites", page.text)
    assert 'name="payload"' not in page.text  # nothing to confirm
    assert Participant.objects.count() == 0


@pytest.mark.parametrize(
    ("encoding", "bom", "warned"),
    [
        ("utf-8", True, False),
        ("utf-8", False, False),
        ("utf-16", False, False),
        ("utf-16-be", True, False),
        ("cp1252", False, True),
    ],
)
def test_the_preview_warns_of_lost_letters_only_for_a_western_european_encoding(
    client, study, coordinator_a, encoding, bom, warned
):
    client.force_login(coordinator_a)
    zoe = {**ROSA, "first_name": "Zoë"}
    preview = upload(client, study, csv_bytes([zoe], encoding=encoding, bom=bom))
    assert "Nothing has been saved yet" in preview.text
    assert ("The file is not Unicode" in preview.text) is warned
    assert ("save the file as “CSV UTF-8”" in preview.text) is warned


def test_a_utf16_file_with_a_broken_character_shows_the_line_not_a_server_error(
    client, study, coordinator_a
):
    client.force_login(coordinator_a)
    page = upload(client, study, _utf16_with_lone_surrogate([ROSA, JAMAL]))
    assert page.status_code == 200
    assert re.search(r"<td>line 3</td><td>first_name</td><td>This value holds a broken", page.text)
    assert 'name="payload"' not in page.text
    assert Participant.objects.count() == 0


def test_a_study_id_taken_between_preview_and_confirmation_saves_nothing(
    client, study, site_a, coordinator_a, enrol
):
    client.force_login(coordinator_a)
    preview = upload(client, study, csv_bytes([ROSA, {**JAMAL, "study_id": "NYC-0050"}]))
    enrol(site=site_a, code="NYC-0050")  # someone enrols by hand meanwhile
    before = counts()
    page = client.post(reverse(CONFIRM_URL), {"payload": payload_of(preview)})
    assert page.status_code == 200
    assert "checked again on confirming" in page.text
    assert re.search(r"<td>line 3</td><td>study_id</td><td>NYC-0050 is already taken", page.text)
    assert counts() == before


def test_a_tampered_or_foreign_confirmation_is_refused(client, study, coordinator_a, pi):
    client.force_login(coordinator_a)
    payload = payload_of(upload(client, study, csv_bytes([ROSA])))
    tampered = payload[:40] + ("A" if payload[40] != "A" else "B") + payload[41:]
    for bad in (tampered, payload[:-10], "", "not-a-payload"):
        page = client.post(reverse(CONFIRM_URL), {"payload": bad})
        assert page.status_code == 400
        assert "could not be verified" in page.text
    client.force_login(pi)  # another user replays the coordinator's preview
    page = client.post(reverse(CONFIRM_URL), {"payload": payload})
    assert page.status_code == 400 and "made by another user" in page.text
    assert Participant.objects.count() == 0


def test_an_old_preview_cannot_be_confirmed(client, study, coordinator_a, monkeypatch):
    client.force_login(coordinator_a)
    payload = payload_of(upload(client, study, csv_bytes([ROSA])))
    monkeypatch.setattr(participant_import, "PAYLOAD_MAX_AGE_SECONDS", -1)
    page = client.post(reverse(CONFIRM_URL), {"payload": payload})
    assert page.status_code == 400 and "upload the file again" in page.text
    assert Participant.objects.count() == 0


def test_a_confirmed_import_is_audited_without_identifiers(client, study, pi):
    client.force_login(pi)
    rows = [ROSA, JAMAL, LEILA, AMY]
    client.post(
        reverse(CONFIRM_URL), {"payload": payload_of(upload(client, study, csv_bytes(rows)))}
    )
    event = AuditEvent.objects.get(action=AuditEvent.Action.PARTICIPANT_IMPORT)
    assert (event.user, event.study, event.participant) == (pi, study, None)
    assert event.details["participants"] == 4
    assert event.details["sites"] == {"LDN": 1, "NYC": 3}
    assert event.details["consent_methods"] == {"written": 2, "verbal": 1, "electronic": 1}
    stored = json.dumps(event.details, ensure_ascii=False) + event.object_id + event.object_type
    for row in rows:
        for column in ("first_name", "last_name", "EMAIL", "phone", "locator_notes"):
            if row.get(column):
                assert row[column] not in stored
    assert "NYC-0001" not in stored  # counts, not a list of who


@pytest.mark.parametrize(
    "url",
    [
        reverse(IMPORT_URL),
        reverse(CONFIRM_URL),
        reverse("admin:surveys_participant_import_done"),
        reverse("admin:surveys_participant_import_template"),
    ],
)
def test_researchers_and_staff_without_a_role_get_403_everywhere(client, study, researcher, url):
    roleless = UserFactory(username="roleless", is_staff=True)
    for user in (researcher, roleless):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {"payload": "x"}).status_code == 403
        assert upload(client, study, csv_bytes([ROSA])).status_code == 403
    assert Participant.objects.count() == 0


def test_the_participant_list_offers_the_import_to_those_who_enrol(
    client, study, coordinator_a, researcher
):
    client.force_login(coordinator_a)
    page = client.get(reverse("admin:surveys_participant_changelist"))
    assert "Import from CSV" in page.text
    client.force_login(researcher)
    page = client.get(reverse("admin:surveys_participant_changelist"))
    assert page.status_code == 200 and "Import from CSV" not in page.text


def test_someone_who_enrols_in_two_studies_chooses_the_study(client, study, pi, staff_user):
    from recovery.services import study_create_from_template

    other = study_create_from_template(
        slug="second", name="Second study", sites=[("BOS", "Boston", "America/New_York")]
    )
    if consent_version_current(study=other) is None:
        ConsentVersion.objects.create(
            study=other, version="2.0", approved_on=date(2025, 1, 1), texts={"en": "Yes."}
        )
    staff_user(study=other, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    client.force_login(pi)
    page = client.get(reverse(IMPORT_URL))
    assert '<select name="study"' in page.text and "Second study" in page.text
    preview = upload(client, other, csv_bytes([{**ROSA, "Site": "BOS"}]))
    assert "into Second study" in preview.text and "BOS-0001" in preview.text
    client.post(reverse(CONFIRM_URL), {"payload": payload_of(preview)})
    assert Participant.objects.get().study == other


def test_the_same_file_confirmed_twice_is_saved_once(study, pi):
    """A double click on Confirm, or the confirmation sent again later: the second finds the
    file imported (checked under a lock on the study) and saves nothing."""
    data = csv_bytes([ROSA, JAMAL])
    assert participants_import(study=study, user=pi, file_bytes=data, commit=True).committed
    again = participants_import(study=study, user=pi, file_bytes=data, commit=True)
    assert not again.committed
    assert [problem.message for problem in again.errors] == [
        "This very file was imported into the study already (each file is imported once): "
        "nothing was saved again."
    ]
    assert Participant.objects.filter(study=study).count() == 2


def test_a_coordinator_told_someone_is_enrolled_at_another_site_is_on_that_persons_record(
    study, site_b, coordinator_a, enrol
):
    """The preview says "(at another site)" without the study ID; saying even that much is a
    disclosure, so it is audited on the other participant, also for a preview."""
    other = enrol(site=site_b, code="LDN-0003", contact={"email": "rosa.m@example.org"})
    result = participants_import(
        study=study, user=coordinator_a, file_bytes=csv_bytes([ROSA]), commit=False
    )
    assert [str(p) for p in result.errors] == [
        "line 2, email: A participant of this study already has this e-mail address "
        "(at another site)."
    ]
    event = AuditEvent.objects.get(participant=other)
    assert event.user == coordinator_a and event.details["preview"] is True
    assert "rosa" not in str(event.details).lower()
