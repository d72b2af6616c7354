import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from surveys.consent import ConsentInput
from surveys.models import Assignment, Participant, ParticipantContact, Response
from surveys.services import (
    assignment_statuses_refresh,
    enrolment_date_validate,
    participant_codes_next,
)

CONTACT = {"first_name": "Rosa", "email": "rosa.m@example.org", "phone": "+12125550143"}


def test_enrolment_creates_one_assignment_per_wave_with_windows_in_the_participants_zone(
    site_a, enrol
):
    now = datetime(2026, 1, 20, 12, tzinfo=UTC)
    participant = enrol(
        site=site_a,
        enrolled_on=date(2026, 1, 15),
        timezone="America/New_York",
        contact=CONTACT,
        now=now,
    )
    assignments = list(participant.assignments.select_related("wave").order_by("due_at"))
    assert [a.wave.slug for a in assignments] == ["baseline", "m1", "m3", "m6", "m12"]
    baseline, month1 = assignments[0], assignments[1]
    assert baseline.opens_at == datetime(2026, 1, 15, 5, tzinfo=UTC)  # midnight EST
    assert baseline.status == Assignment.Status.OPEN
    assert month1.due_at == datetime(2026, 2, 14, 5, tzinfo=UTC)
    assert month1.status == Assignment.Status.SCHEDULED


def test_backdated_enrolment_marks_closed_windows_missed(site_a, enrol):
    # Due days: m1 1 Feb, m3 3 Apr, m6 3 Jul (window 26 Jun - 31 Jul), m12 2 Jan 2027.
    now = datetime(2026, 7, 1, tzinfo=UTC)
    participant = enrol(site=site_a, enrolled_on=date(2026, 1, 2), now=now)
    statuses = dict(participant.assignments.values_list("wave__slug", "status"))
    assert statuses == {
        "baseline": "missed",
        "m1": "missed",
        "m3": "missed",
        "m6": "open",
        "m12": "scheduled",
    }


def test_contact_details_are_encrypted_at_rest_and_read_back_in_clear(site_a, enrol):
    participant = enrol(site=site_a, contact=CONTACT)
    contact = ParticipantContact.objects.get(participant=participant)
    assert contact.email == "rosa.m@example.org"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT first_name, email, phone FROM surveys_participantcontact "
            "WHERE participant_id = %s",
            [participant.pk],
        )
        raw = cursor.fetchone()
    for stored, clear in zip(raw, ("Rosa", "rosa.m@example.org", "+12125550143"), strict=True):
        assert clear not in stored
        assert stored.startswith("gAAAA")  # a Fernet token


def test_research_tables_hold_no_contact_details(site_a, enrol):
    participant = enrol(site=site_a, code="NYC-0007", contact=CONTACT)
    row = Participant.objects.filter(pk=participant.pk).values().get()
    flat = " ".join(str(value) for value in row.values())
    for value in CONTACT.values():
        assert value not in flat


def test_enrolment_rejects_an_unknown_time_zone_and_saves_nothing(site_a, enrol):
    with pytest.raises(ValidationError) as excinfo:
        enrol(site=site_a, timezone="Mars/Olympus_Mons")
    assert "timezone" in excinfo.value.message_dict
    assert not Participant.objects.exists()
    assert not Assignment.objects.exists()


def test_enrolment_rejects_a_site_of_another_study(site_a, enrol, db):
    from recovery.services import study_create_from_template

    other = study_create_from_template(slug="other", name="Other", sites=[("X", "X", "UTC")])
    with pytest.raises(ValidationError) as excinfo:
        enrol(site=site_a, study=other)
    assert "site" in excinfo.value.message_dict


def test_enrolment_rejects_unknown_contact_fields_and_saves_nothing(site_a, enrol):
    with pytest.raises(ValidationError):
        enrol(site=site_a, contact={"social_security_number": "123"})
    assert not Participant.objects.exists()


def test_duplicate_study_id_in_a_study_is_refused(site_a, site_b, enrol):
    enrol(site=site_a, code="NYC-0001")
    with pytest.raises(ValidationError):
        enrol(site=site_b, code="NYC-0001")


def test_refresh_opens_and_misses_assignments_once(site_a, enrol):
    enrolled = date(2026, 1, 15)
    participant = enrol(site=site_a, enrolled_on=enrolled, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    month1 = participant.assignments.get(wave__slug="m1")
    assert month1.status == Assignment.Status.SCHEDULED

    in_window = month1.opens_at + timedelta(hours=1)
    # The baseline window (15-29 January) closed unanswered before month 1 opened.
    assert assignment_statuses_refresh(now=in_window) == {"opened": 1, "missed": 1}
    assert assignment_statuses_refresh(now=in_window) == {"opened": 0, "missed": 0}
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.OPEN

    after_close = month1.closes_at
    result = assignment_statuses_refresh(now=after_close)
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.MISSED
    assert result == {"opened": 0, "missed": 1}
    assert assignment_statuses_refresh(now=after_close)["missed"] == 0


def test_refresh_leaves_completed_assignments_alone(site_a, enrol):
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    baseline = participant.assignments.get(wave__slug="baseline")
    Assignment.objects.filter(pk=baseline.pk).update(status=Assignment.Status.COMPLETED)
    assignment_statuses_refresh(now=baseline.closes_at + timedelta(days=1))
    baseline.refresh_from_db()
    assert baseline.status == Assignment.Status.COMPLETED


def test_refresh_does_not_open_windows_of_withdrawn_participants(site_a, enrol):
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    month1 = participant.assignments.get(wave__slug="m1")
    assignment_statuses_refresh(now=month1.opens_at + timedelta(hours=1))
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.SCHEDULED


def _response(assignment, **fields):
    instrument = assignment.wave.instruments.get()
    return Response(
        assignment=assignment,
        instrument=instrument,
        instrument_version=instrument.current_version,
        started_at=datetime(2026, 2, 1, tzinfo=UTC),
        **fields,
    )


def test_a_client_uuid_makes_at_most_one_response(site_a, enrol):
    a = enrol(site=site_a, code="A").assignments.get(wave__slug="m1")
    b = enrol(site=site_a, code="B").assignments.get(wave__slug="m1")
    client_id = uuid.uuid4()
    _response(a, client_id=client_id).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        _response(b, client_id=client_id).save()


def test_an_assignment_has_one_response_per_instrument(site_a, enrol):
    assignment = enrol(site=site_a).assignments.get(wave__slug="m1")
    _response(assignment).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        _response(assignment).save()


def test_a_submitted_response_must_record_when(site_a, enrol):
    assignment = enrol(site=site_a).assignments.get(wave__slug="m1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _response(assignment, status=Response.Status.SUBMITTED).save()


def test_research_data_cannot_be_deleted_as_a_side_effect(site_a, enrol):
    from django.db.models import ProtectedError

    assignment = enrol(site=site_a).assignments.get(wave__slug="m1")
    response = _response(assignment, answers={"craving": 4})
    response.save()
    with pytest.raises(ProtectedError):
        assignment.participant.delete()
    with pytest.raises(ProtectedError):
        assignment.delete()
    with pytest.raises(ProtectedError):
        response.instrument_version.delete()
    assert Response.objects.filter(pk=response.pk).exists()


def test_closing_windows_of_withdrawn_participants_are_not_counted_as_missed(site_a, enrol):
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    month1 = participant.assignments.get(wave__slug="m1")
    assignment_statuses_refresh(now=month1.closes_at + timedelta(days=1))
    assert not participant.assignments.filter(status=Assignment.Status.MISSED).exists()


def test_study_ids_are_given_per_site_in_sequence_skipping_taken_ones(site_a, site_b, enrol):
    from django.utils import timezone

    first = enrol(site=site_a, code="", enrolled_on=timezone.localdate())
    enrol(site=site_a, code="NYC-0002", enrolled_on=timezone.localdate())  # typed by hand
    third = enrol(site=site_a, code="", enrolled_on=timezone.localdate())
    other = enrol(site=site_b, code="", enrolled_on=timezone.localdate())
    assert (first.code, third.code, other.code) == ("NYC-0001", "NYC-0003", "LDN-0001")


def test_the_add_form_offers_today_on_the_sites_clocks_not_the_servers(
    client, study, site_a, site_b, staff_user, monkeypatch
):
    """A PI of New York and London at 21:00 in New York (01:00 UTC the next day): the form
    offers New York's date, the earlier one, never tomorrow where the participant is."""
    from datetime import UTC, date, datetime

    from django.utils import timezone

    from surveys.models import StaffRole

    assert {site_a.timezone, site_b.timezone} == {"America/New_York", "Europe/London"}
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 6, 2, 1, 0, tzinfo=UTC))
    client.force_login(
        staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    )
    form = client.get("/admin/surveys/participant/add/").text
    assert 'name="enrolled_on" value="2026-06-01"' in form
    assert date(2026, 6, 2).isoformat() not in form


def test_the_admin_gives_the_next_study_id_when_the_field_is_left_empty(
    client, site_a, coordinator_a
):
    from surveys.models import Participant

    client.force_login(coordinator_a)
    form = client.get("/admin/surveys/participant/add/").text
    assert "Leave empty to give the site" in form
    reply = client.post(
        "/admin/surveys/participant/add/",
        {
            "study": site_a.study_id, "site": site_a.pk, "code": "", "status": "active",
            "enrolled_on": "2026-11-24", "timezone": "America/New_York", "language": "en",
            "preferred_channel": "email", "consent_method": "electronic",
            "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
            "contact-0-email": "new@example.org",
        },
    )  # fmt: skip
    assert reply.status_code == 302, reply.content[:3000]
    assert Participant.objects.get().code == "NYC-0001"


@pytest.mark.django_db(transaction=True)
def test_two_enrolments_at_once_get_different_study_ids(study, enrol):
    import threading

    from django.db import connection, connections
    from django.utils import timezone

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (CI sets DATABASE_URL)")
    site = study.sites.get(code="NYC")
    codes, barrier = [], threading.Barrier(4)

    def one():
        connections["default"].ensure_connection()
        barrier.wait()
        codes.append(enrol(site=site, code="", enrolled_on=timezone.localdate()).code)
        connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["NYC-0001", "NYC-0002", "NYC-0003", "NYC-0004"]


def test_the_admin_enrolment_form_fills_in_today_the_site_time_zone_and_the_study(
    client, site_a, coordinator_a
):
    from django.utils import timezone

    from surveys.models import Participant

    client.force_login(coordinator_a)
    page = client.get("/admin/surveys/participant/add/").text
    # today at their only site, on its clock
    new_york_today = timezone.localdate(timezone=ZoneInfo(site_a.timezone))
    assert f'value="{new_york_today:%Y-%m-%d}"' in page
    assert f'<option value="{site_a.study_id}" selected>' in page
    assert "PIN" not in page and "Identifiers erased" not in page  # nothing to show yet
    reply = client.post(
        "/admin/surveys/participant/add/",
        {
            "study": site_a.study_id, "site": site_a.pk, "code": "", "timezone": "",
            "enrolled_on": str(timezone.localdate()), "language": "en",
            "preferred_channel": "email", "consent_method": "electronic",
            "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
            "contact-0-email": "new@example.org",
        },
    )  # fmt: skip
    assert reply.status_code == 302, reply.text[:3000]
    assert Participant.objects.get().timezone == site_a.timezone == "America/New_York"


def test_study_ids_taken_in_a_block_pass_over_typed_ones_and_enrolment_carries_on(site_a, enrol):
    enrol(site=site_a, code="NYC-0002")  # typed by hand
    with transaction.atomic():
        codes = participant_codes_next(site=site_a, count=3)
    assert codes == ["NYC-0001", "NYC-0003", "NYC-0004"]
    assert enrol(site=site_a, code="").code == "NYC-0005"


# --- The enrolment day: not in the future, not before consent (the CSV import's rule) ----------

# 21:00 UTC on 10 March: already 11 March in Tehran (UTC+3:30), still 10 March in New York.
EVENING_IN_UTC = datetime(2026, 3, 10, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "enrolled_on", "refused"),
    [
        ("Asia/Tehran", date(2026, 3, 11), False),  # today on the participant's clock
        ("Asia/Tehran", date(2026, 3, 12), True),
        ("America/New_York", date(2026, 3, 10), False),
        ("America/New_York", date(2026, 3, 11), True),  # tomorrow on both clocks
    ],
)
def test_an_enrolment_day_ahead_of_the_participants_and_the_servers_today_is_refused(
    zone, enrolled_on, refused
):
    def check():
        enrolment_date_validate(
            enrolled_on=enrolled_on, timezone_name=zone, consent=None, now=EVENING_IN_UTC
        )

    if not refused:
        check()
        return
    with pytest.raises(ValidationError) as excinfo:
        check()
    latest = "2026-03-11" if zone == "Asia/Tehran" else "2026-03-10"
    assert excinfo.value.message_dict == {
        "enrolled_on": [
            f"{enrolled_on.isoformat()} is in the future: write the day the participant was "
            f"enrolled, {latest} at the latest."
        ]
    }


def test_an_enrolment_day_before_paper_consent_is_refused_and_e_consent_has_no_day_yet():
    def check(method):
        enrolment_date_validate(
            enrolled_on=date(2026, 3, 1),
            timezone_name="America/New_York",
            consent=ConsentInput(method=method, consented_on=date(2026, 3, 2)),
            now=EVENING_IN_UTC,
        )

    for method in ("written", "verbal"):
        with pytest.raises(ValidationError) as excinfo:
            check(method)
        assert excinfo.value.message_dict == {
            "enrolled_on": [
                "2026-03-01 is before the consent date (2026-03-02): nobody is enrolled before "
                "they consent."
            ]
        }
    check("electronic")  # the date is the phone's to record


def test_paper_consent_signed_today_on_the_participants_clock_is_not_in_the_future(
    site_a, enrol, coordinator_a, monkeypatch
):
    """At 21:00 UTC it is already 11 March in Tehran: consent signed and enrolment on that
    day are both today there (the consent date used to be judged on the server's date only,
    and refused as in the future while the enrolment day was taken). 12 March is refused."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: EVENING_IN_UTC)

    def signed(day):
        return ConsentInput(method="written", consented_on=day, obtained_by=coordinator_a)

    tehran = enrol(
        site=site_a,
        code="",
        timezone="Asia/Tehran",
        enrolled_on=date(2026, 3, 11),
        consent=signed(date(2026, 3, 11)),
    )
    assert tehran.consents.get().consented_on == date(2026, 3, 11)
    with pytest.raises(ValidationError) as excinfo:
        enrol(
            site=site_a,
            code="",
            timezone="Asia/Tehran",
            enrolled_on=date(2026, 3, 11),
            consent=signed(date(2026, 3, 12)),
        )
    assert excinfo.value.message_dict["consent_date"] == [
        "The date of consent cannot be in the future."
    ]
    with pytest.raises(ValidationError):  # New York is still on 10 March
        enrol(
            site=site_a,
            code="",
            timezone="America/New_York",
            enrolled_on=date(2026, 3, 10),
            consent=signed(date(2026, 3, 11)),
        )


def test_the_service_refuses_a_future_enrolment_day_and_saves_nothing(site_a, enrol):
    from django.utils import timezone

    in_two_days = timezone.localdate() + timedelta(days=2)  # past midnight in every zone
    with pytest.raises(ValidationError) as excinfo:
        enrol(site=site_a, code="", enrolled_on=in_two_days, contact=CONTACT)
    assert list(excinfo.value.message_dict) == ["enrolled_on"]
    assert not Participant.objects.exists() and not ParticipantContact.objects.exists()
    site_a.refresh_from_db()
    assert site_a.last_number == 0  # no study ID used up


def _add_page_post(client, site, **fields):
    return client.post(
        "/admin/surveys/participant/add/",
        {
            "study": site.study_id, "site": site.pk, "code": "", "timezone": "",
            "language": "en", "preferred_channel": "email",
            "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
            "contact-0-email": "new@example.org",
            **fields,
        },
    )  # fmt: skip


def test_the_admin_add_form_refuses_an_enrolment_day_in_the_future_on_its_field(
    client, site_a, coordinator_a
):
    from django.utils import timezone

    client.force_login(coordinator_a)
    in_two_days = timezone.localdate() + timedelta(days=2)  # past midnight in every zone
    reply = _add_page_post(
        client, site_a, enrolled_on=in_two_days.isoformat(), consent_method="electronic"
    )

    assert reply.status_code == 200  # the form again, not a redirect
    form = reply.context["adminform"].form
    assert list(form.errors) == ["enrolled_on"]
    assert form.errors["enrolled_on"][0].startswith(
        f"{in_two_days.isoformat()} is in the future: write the day the participant was enrolled"
    )
    assert "is in the future" in reply.text
    assert not Participant.objects.exists() and not ParticipantContact.objects.exists()
    site_a.refresh_from_db()
    assert site_a.last_number == 0


def test_the_admin_add_form_refuses_an_enrolment_day_before_the_consent_date(
    client, site_a, coordinator_a
):
    client.force_login(coordinator_a)
    reply = _add_page_post(
        client,
        site_a,
        enrolled_on="2026-03-01",
        consent_method="verbal",
        consent_date="2026-03-02",
    )

    assert reply.status_code == 200
    assert reply.context["adminform"].form.errors == {
        "enrolled_on": [
            "2026-03-01 is before the consent date (2026-03-02): nobody is enrolled before "
            "they consent."
        ]
    }
    assert not Participant.objects.exists() and not ParticipantContact.objects.exists()


def test_the_admin_add_form_enrols_on_the_day_of_consent(client, site_a, coordinator_a):
    client.force_login(coordinator_a)
    reply = _add_page_post(
        client,
        site_a,
        enrolled_on="2026-03-02",
        consent_method="verbal",
        consent_date="2026-03-02",
    )

    assert reply.status_code == 302, reply.text[:3000]
    participant = Participant.objects.get()
    assert participant.enrolled_on == date(2026, 3, 2)
    assert str(participant.consents.get().consented_on) == "2026-03-02"
