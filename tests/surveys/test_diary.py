"""The meeting diary: logging on the home page, removing, the survey's starting counts, and the
de-identified export."""

import csv
import io
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format

from surveys import diary
from surveys.datasets.pid import export_pid
from surveys.dictionary import dictionary_export
from surveys.links import participant_link_create
from surveys.models import Assignment, DiaryEntry, StaffRole
from surveys.selectors import DIARY_TABLE_COLUMNS
from surveys.services import diary_entry_log

TZ = "America/New_York"


def local_today(tz: str = TZ):
    return diary.local_today(tz, timezone.now())


@pytest.fixture
def participant(site_a, enrol):
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=local_today() - timedelta(days=30),
        timezone=TZ,
    )


def sign_in(client, participant):
    _, token = participant_link_create(participant=participant)
    assert client.get(f"/p/{token}").status_code == 302
    return client


@pytest.fixture
def signed_in(client, participant):
    return sign_in(client, participant)


def log(client, *, group="1", format="inperson", day=None, client_id=None):
    return client.post(
        "/p/diary",
        {
            "group": group,
            "format": format,
            "occurred_on": (day or local_today()).isoformat(),
            "client_id": str(client_id or uuid.uuid4()),
        },
    )


def plant(participant, *days_ago, group="1", format="inperson"):
    today = local_today(participant.timezone)
    DiaryEntry.objects.bulk_create(
        DiaryEntry(
            participant=participant,
            group=group,
            format=format,
            occurred_on=today - timedelta(days=n),
        )
        for n in days_ago
    )


# --- The choices ---------------------------------------------------------------------------


def test_the_recovery_app_registers_the_fellowships_and_formats():
    assert [c.code for c in diary.groups()] == [str(n) for n in range(1, 13)]
    assert [c.code for c in diary.formats()] == ["inperson", "online", "online24", "hybrid"]
    assert diary.group_label("1", "es") == "Narcóticos Anónimos"
    assert diary.format_label("inperson", "es") == "En persona"
    # Persian has no labels of its own: English.
    assert diary.group_label("1", "fa") == "Narcotics Anonymous"
    assert diary.format_label("inperson", "fa") == "In person"


# --- Logging and removing -------------------------------------------------------------------


def test_a_logged_meeting_is_stored_and_shown_back_on_the_home_page(signed_in, participant):
    day = local_today() - timedelta(days=2)
    reply = log(signed_in, group="1", format="inperson", day=day)
    assert reply.status_code == 302 and reply["Location"] == "/p/#diary"
    entry = DiaryEntry.objects.get()
    assert (entry.participant, entry.group, entry.format, entry.occurred_on) == (
        participant,
        "1",
        "inperson",
        day,
    )
    home = signed_in.get("/p/").text
    shown = date_format(day, "j F Y")
    assert f"Meeting logged: Narcotics Anonymous, In person, {shown}." in home
    log_section = home.split('id="diary-log-title"')[1]
    assert "Narcotics Anonymous" in log_section and shown in log_section
    assert "1 meeting logged so far." in home
    # The message is shown once.
    assert "Meeting logged" not in signed_in.get("/p/").text


def test_a_message_not_yet_shown_goes_with_the_session_at_sign_out(
    signed_in, participant, site_a, enrol
):
    """Dana logs a meeting and signs out before her home page shows "Meeting logged": the
    message is not left on the phone (it was, in a cookie of its own) for Sam's first page."""
    log(signed_in, group="1", format="inperson", day=local_today() - timedelta(days=2))
    signed_in.post("/p/sign-out")
    assert not any("Narcotics" in morsel.value for morsel in signed_in.cookies.values())
    sam = enrol(site=site_a, code="NYC-0077", enrolled_on=local_today())
    _, token = participant_link_create(participant=sam)
    signed_in.get(f"/p/{token}")
    home = signed_in.get("/p/")
    assert home.status_code == 200 and "Meeting logged" not in home.text


def test_the_form_has_labelled_fields_and_defaults_to_today_where_the_participant_lives(
    client, site_a, enrol
):
    # Kiritimati is 14 hours ahead of UTC: its date is often not the server's.
    participant = enrol(
        site=site_a,
        code="NYC-0050",
        enrolled_on=local_today() - timedelta(days=30),
        timezone="Pacific/Kiritimati",
    )
    home = sign_in(client, participant).get("/p/").text
    today = local_today("Pacific/Kiritimati").isoformat()
    assert f'name="occurred_on" value="{today}"' in home
    assert f'max="{today}"' in home
    for field in ("diary-group", "diary-format", "diary-date"):
        assert f'<label for="{field}"' in home and f'id="{field}"' in home
    assert 'name="client_id" value="' in home
    # A new id for every form shown.
    ids = {
        re.search(r'name="client_id" value="([^"]+)"', client.get("/p/").text).group(1)
        for _ in range(2)
    }
    assert len(ids) == 2


def test_a_future_date_gives_a_clear_error_and_stores_nothing(signed_in):
    reply = log(signed_in, day=local_today() + timedelta(days=1))
    assert reply.status_code == 400
    assert "This date is in the future." in reply.text
    assert 'id="diary-date"' in reply.text and 'aria-invalid="true"' in reply.text
    assert 'aria-describedby="err-diary-date"' in reply.text
    assert not DiaryEntry.objects.exists()


def test_unknown_codes_give_clear_errors_keep_the_answers_and_store_nothing(signed_in):
    day = local_today() - timedelta(days=1)
    reply = log(signed_in, group="99", format="boat", day=day)
    assert reply.status_code == 400
    assert "Choose a group from the list." in reply.text
    assert "Choose how the meeting took place from the list." in reply.text
    assert f'value="{day.isoformat()}"' in reply.text  # the date as sent
    assert not DiaryEntry.objects.exists()


def test_a_meeting_long_before_enrolment_is_refused_with_the_first_day_allowed(
    signed_in, participant
):
    earliest = participant.enrolled_on - timedelta(days=30)
    reply = log(signed_in, day=earliest - timedelta(days=1))
    assert reply.status_code == 400
    assert f"Meetings can be logged from {date_format(earliest, 'j F Y')} on." in reply.text
    assert not DiaryEntry.objects.exists()
    assert log(signed_in, day=earliest).status_code == 302


def test_the_same_form_sent_twice_stores_one_meeting(signed_in):
    client_id = uuid.uuid4()
    assert log(signed_in, client_id=client_id).status_code == 302
    assert log(signed_in, client_id=client_id).status_code == 302
    assert DiaryEntry.objects.count() == 1


def test_a_participant_removes_their_own_entry_but_not_anothers(
    signed_in, participant, site_a, enrol
):
    log(signed_in)
    mine = DiaryEntry.objects.get()
    other = enrol(site=site_a, code="NYC-0043", enrolled_on=local_today() - timedelta(days=5))
    plant(other, 1)
    theirs = DiaryEntry.objects.get(participant=other)

    assert signed_in.post(f"/p/diary/{theirs.pk}/delete").status_code == 404
    assert DiaryEntry.objects.filter(pk=theirs.pk).exists()

    reply = signed_in.post(f"/p/diary/{mine.pk}/delete")
    assert reply.status_code == 302 and reply["Location"] == "/p/#diary"
    assert not DiaryEntry.objects.filter(pk=mine.pk).exists()
    home = signed_in.get("/p/").text
    assert "Removed from your log: Narcotics Anonymous, In person" in home
    assert "0 meetings logged so far." in home
    assert signed_in.post(f"/p/diary/{mine.pk}/delete").status_code == 404  # already gone


def test_the_diary_needs_the_participants_session_and_the_csrf_token(client, participant):
    assert log(client).status_code == 404
    plant(participant, 1)
    entry = DiaryEntry.objects.get()
    assert client.post(f"/p/diary/{entry.pk}/delete").status_code == 404
    strict = Client(enforce_csrf_checks=True)
    sign_in(strict, participant)
    assert log(strict).status_code == 403
    assert strict.post(f"/p/diary/{entry.pk}/delete").status_code == 403
    assert DiaryEntry.objects.count() == 1


def test_the_home_page_lists_the_latest_ten_newest_first(signed_in, participant):
    plant(participant, *range(12))
    home = signed_in.get("/p/").text
    listed = home.split('class="diary-log"')[1]
    assert listed.count("<li>") == 10
    newest, oldest_shown = local_today(), local_today() - timedelta(days=9)
    assert listed.index(date_format(newest, "j F Y")) < listed.index(
        date_format(oldest_shown, "j F Y")
    )
    assert date_format(local_today() - timedelta(days=10), "j F Y") not in listed
    assert "Your latest 10 meetings:" in home


def test_the_count_since_the_last_survey(signed_in, participant):
    plant(participant, 20, 15, 3, 1)
    completed = timezone.now() - timedelta(days=10)
    Assignment.objects.filter(participant=participant, wave__slug="baseline").update(
        status=Assignment.Status.COMPLETED, completed_at=completed
    )
    home = signed_in.get("/p/").text
    day = date_format(diary.local_today(TZ, completed), "j F")
    assert f"2 meetings logged since your last survey ({day})." in home


def test_dates_on_the_home_page_are_in_the_participants_language(client, site_a, enrol):
    participant = enrol(
        site=site_a,
        code="NYC-0051",
        enrolled_on=local_today() - timedelta(days=30),
        timezone=TZ,
        language="es",
    )
    plant(participant, 0)
    home = sign_in(client, participant).get("/p/").text
    with translation.override("es"):
        spanish = date_format(local_today(), "j F Y")
    assert spanish in home
    assert "Narcóticos Anónimos" in home and "En persona" in home


# --- The survey starts from the log ---------------------------------------------------------


@pytest.fixture
def month1(participant):
    return participant.assignments.get(wave__slug="m1")


def survey_url(assignment):
    return f"/p/s/{assignment.pk}/followup/"


def test_the_survey_starts_from_the_logged_counts_with_a_note(signed_in, participant, month1):
    plant(participant, 0, 6, 29)  # three NA meetings in person in the past 30 days
    plant(participant, 30)  # and one older, not counted
    plant(participant, 2, group="4", format="online")  # one AA meeting online
    html = signed_in.get(survey_url(month1)).text
    since = date_format(local_today() - timedelta(days=29), "j F")

    count = re.search(r'<input id="in-mtg_na_inperson"[^>]*>', html).group(0)
    assert 'value="3"' in count
    assert 'aria-describedby="diary-mtg_na_inperson err-mtg_na_inperson"' in count
    note = f"Your log shows 3 meetings since {since} — please check this number."
    assert f'<p class="note from-diary" id="diary-mtg_na_inperson">{note}</p>' in html
    assert 'value="1"' in re.search(r'<input id="in-mtg_aa_online"[^>]*>', html).group(0)
    # Formats with nothing logged start empty.
    assert 'value=""' in re.search(r'<input id="in-mtg_na_online"[^>]*>', html).group(0)
    # Yes to "any meetings", and the groups logged.
    assert re.search(r'name="attended_any" value="1" checked', html)
    assert re.search(r'name="fellowships" value="1" checked', html)
    assert re.search(r'name="fellowships" value="4" checked', html)
    assert not re.search(r'name="fellowships" value="2" checked', html)
    assert 'aria-describedby="diary-attended_any err-attended_any"' in html
    assert "Your log shows 4 meetings since" in html


def test_a_draft_answer_wins_over_the_log(signed_in, participant, month1):
    plant(participant, 1, 2, 3)
    draft = signed_in.put(
        f"/api/v1/participant/assignments/{month1.pk}/responses/followup/draft/",
        {
            "client_id": str(uuid.uuid4()),
            "answers": {"attended_any": 1, "fellowships": ["1"], "mtg_na_inperson": 5},
        },
        content_type="application/json",
    )
    assert draft.status_code == 200, draft.json()
    html = signed_in.get(survey_url(month1)).text
    assert 'value="5"' in re.search(r'<input id="in-mtg_na_inperson"[^>]*>', html).group(0)
    assert 'id="diary-mtg_na_inperson"' not in html
    assert 'id="diary-attended_any"' not in html


def test_without_a_log_the_survey_starts_empty(signed_in, month1):
    html = signed_in.get(survey_url(month1)).text
    assert "from-diary" not in html
    assert not re.search(r'name="attended_any" value="1" checked', html)


def test_the_weekly_check_in_counts_the_past_seven_days(signed_in, participant, study):
    from surveys.services import recurring_assignments_extend

    weekly = study.waves.get(slug="weekly")
    weekly.is_active = True
    weekly.save()
    recurring_assignments_extend(now=timezone.now())
    assignment = (
        participant.assignments.filter(
            wave=weekly, opens_at__lte=timezone.now(), closes_at__gt=timezone.now()
        )
        .order_by("-opens_at")
        .first()
    )
    if assignment is None:
        pytest.skip("no weekly check-in open today for this enrolment date")
    plant(participant, 0, 6, 7, format="online")
    html = signed_in.get(f"/p/s/{assignment.pk}/checkin/").text
    count = re.search(r'<input id="in-checkin_mtg_online"[^>]*>', html).group(0)
    assert 'value="2"' in count


def test_the_battery_dictionary_carries_the_diary_options(study):
    exported = dictionary_export(study=study)
    assert '@DIARY=""group=1 format=inperson days=30""' in exported
    assert '@DIARY=""format=online days=7""' in exported


# --- The export and the admin ---------------------------------------------------------------


@pytest.fixture
def two_sites(site_a, site_b, enrol):
    contact = {"first_name": "Lupe", "email": "lupe@example.org", "phone": "+12125550177"}
    a = enrol(
        site=site_a,
        code="NYC-0001",
        enrolled_on=local_today() - timedelta(days=20),
        timezone=TZ,
        contact=contact,
    )
    b = enrol(
        site=site_b,
        code="LDN-0001",
        enrolled_on=local_today("Europe/London") - timedelta(days=10),
        timezone="Europe/London",
        contact={**contact, "email": "sam@example.org"},
    )
    plant(a, 5, 1)
    plant(b, 2, group="6", format="online")
    return a, b


def download_dataset(client, study):
    """The study's wide dataset from the Export data page, read as a researcher would."""
    import pandas as pd

    reply = client.post(
        reverse("admin:surveys_study_export", args=[study.pk]),
        {"shape": "wide", "format": "csv", "dates": "days"},
    )
    assert reply.status_code == 200, reply.content[:500]
    return pd.read_csv(io.BytesIO(b"".join(reply.streaming_content)))


def download(client, study):
    reply = client.get(reverse("admin:surveys_diaryentry_export", args=[study.pk]))
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("text/csv")
    return b"".join(reply.streaming_content).decode()


def test_the_csv_is_a_tidy_de_identified_table(client, staff_user, study, two_sites):
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    client.force_login(pi)
    text = download(client, study)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == ("pid", *DIARY_TABLE_COLUMNS[1:])
    a, b = two_sites
    pid_a, pid_b = (export_pid(study, participant_id=p.pk, code=p.code) for p in (a, b))
    assert pid_a.startswith("P") and len(pid_a) == 17  # the keyed hash, not the study ID
    assert sorted(rows[1:]) == sorted([
        [pid_b, "LDN", "6", "SMART Recovery", "online", "Online (video, phone or chat)",
         "8", "10"],
        [pid_a, "NYC", "1", "Narcotics Anonymous", "inperson", "In person", "15", "20"],
        [pid_a, "NYC", "1", "Narcotics Anonymous", "inperson", "In person", "19", "20"],
    ])  # fmt: skip
    assert "NYC-0001" not in text and "LDN-0001" not in text
    # The same pid as the study's dataset: the diary joins it.
    wide = download_dataset(client, study)
    assert {pid_a, pid_b} <= set(wide["pid"])
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}", text)  # no calendar dates
    for identifier in ("Lupe", "lupe@example.org", "sam@example.org", "2125550177", "@"):
        assert identifier not in text


def test_every_download_of_the_diary_is_audited(client, staff_user, study, two_sites):
    from surveys.models import AuditEvent

    site_b = study.sites.get(code="LDN")
    coordinator_b = staff_user(
        study=study, role=StaffRole.Role.COORDINATOR, sites=[site_b], username="coord-b"
    )
    client.force_login(coordinator_b)
    text = download(client, study)
    event = AuditEvent.objects.get(action=AuditEvent.Action.DATASET_EXPORT)
    assert (event.username, event.study_id) == ("coord-b", study.pk)
    assert event.details["shape"] == "diary" and event.details["format"] == "csv"
    assert event.details["identified"] is False
    assert event.details["rows"] == len(text.splitlines()) - 1 == 1


def test_a_coordinator_of_another_site_sees_none_of_them(client, staff_user, study, two_sites):
    site_b = study.sites.get(code="LDN")
    coordinator_b = staff_user(
        study=study, role=StaffRole.Role.COORDINATOR, sites=[site_b], username="coord-b"
    )
    client.force_login(coordinator_b)
    listing = client.get(reverse("admin:surveys_diaryentry_changelist"))
    assert listing.status_code == 200
    assert "LDN-0001" in listing.text and "NYC-0001" not in listing.text
    text = download(client, study)
    a, b = two_sites
    assert export_pid(study, participant_id=b.pk, code=b.code) in text
    assert export_pid(study, participant_id=a.pk, code=a.code) not in text
    assert '"NYC"' not in text
    theirs = DiaryEntry.objects.filter(participant__code="NYC-0001").first()
    page = client.get(reverse("admin:surveys_diaryentry_change", args=[theirs.pk]))
    assert page.status_code in (302, 404)


def test_a_researcher_sees_study_ids_and_days_only(client, researcher, study, two_sites):
    client.force_login(researcher)
    listing = client.get(reverse("admin:surveys_diaryentry_changelist"))
    assert listing.status_code == 200
    assert "NYC-0001" in listing.text and "LDN-0001" in listing.text
    assert "Download CSV" in listing.text
    table = listing.text.split('id="result_list"')[1].split("</table>")[0]
    for entry in DiaryEntry.objects.all():
        assert date_format(entry.occurred_on, "N j, Y") not in table
        assert entry.occurred_on.isoformat() not in table
    assert "lupe@example.org" not in listing.text
    # Read-only: nothing is added, changed or deleted in the admin.
    assert client.get(reverse("admin:surveys_diaryentry_add")).status_code == 403


def test_a_staff_member_of_another_study_cannot_download_it(client, staff_user, study, two_sites):
    from recovery.services import study_create_from_template

    other = study_create_from_template(slug="other", name="Other", sites=[("OTH", "O", "UTC")])
    stranger = staff_user(study=other, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="x")
    client.force_login(stranger)
    reply = client.get(reverse("admin:surveys_diaryentry_export", args=[study.pk]))
    assert reply.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_simultaneous_sends_of_one_form_store_one_meeting(participant):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent inserts need PostgreSQL (CI sets DATABASE_URL)")
    client_id = uuid.uuid4()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def worker():
        try:
            start.wait()
            entry = diary_entry_log(
                participant=participant,
                group="1",
                format="inperson",
                occurred_on=local_today(),
                client_id=client_id,
            )
            outcomes.append(str(entry.client_id))
        except Exception as exc:  # anything else would be a 500
            outcomes.append(f"error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [str(client_id)] * 8
    assert DiaryEntry.objects.count() == 1
