import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone, translation
from django.utils.formats import date_format

from surveys.links import participant_link_create, participant_links_revoke
from surveys.models import Assignment, Participant
from surveys.reminders import local_moment
from tests.api.test_responses_api import ANSWERS


@pytest.fixture
def participant(site_a, enrol):
    return enrol(
        site=site_a, code="NYC-0042", enrolled_on=timezone.localdate() - timedelta(days=30)
    )


def test_a_personal_link_starts_a_session_that_shows_the_participants_surveys(client, participant):
    _, token = participant_link_create(participant=participant)
    opened = client.get(f"/p/{token}")
    assert opened.status_code == 302
    assert opened["Location"] == "/p/"
    home = client.get("/p/")
    assert home.status_code == 200
    assert "Ready for you now" in home.text
    assert "1 month" in home.text  # the month-1 window is open
    assert "Coming next" in home.text and "3 months" in home.text
    assert "NYC-0042" not in home.text  # no identifiers or codes on the page


def test_a_guessed_link_or_no_session_answers_404(client, participant):
    assert client.get("/p/" + "a" * 43).status_code == 404
    assert client.get("/p/").status_code == 404


def test_an_expired_or_revoked_link_gets_a_friendly_page(client, participant):
    _, token = participant_link_create(
        participant=participant, now=timezone.now() - timedelta(days=90), days=60
    )
    expired = client.get(f"/p/{token}")
    assert expired.status_code == 410
    assert "This link has expired" in expired.text
    _, fresh = participant_link_create(participant=participant)
    participant_links_revoke(participant=participant)
    assert client.get(f"/p/{fresh}").status_code == 410
    assert client.get("/p/").status_code == 404


def test_each_link_gets_a_new_session_so_a_shared_phone_never_mixes_people(
    client, site_a, enrol, participant
):
    other = enrol(
        site=site_a, code="NYC-0043", enrolled_on=timezone.localdate() - timedelta(days=100)
    )
    _, first = participant_link_create(participant=participant)
    _, second = participant_link_create(participant=other)
    client.get(f"/p/{first}")
    first_session = client.session.session_key
    client.get(f"/p/{second}")
    assert client.session.session_key != first_session
    assert client.session["participant_id"] == other.pk


def test_the_session_ends_when_the_participant_withdraws(client, participant):
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    assert client.get("/p/").status_code == 404


def test_the_session_cookie_is_http_only(client, participant):
    _, token = participant_link_create(participant=participant)
    response = client.get(f"/p/{token}")
    assert response.cookies["sessionid"]["httponly"]


def test_dates_are_in_the_participants_time_zone_and_language(client, site_a, enrol):
    # The month-1 survey, "coming next", opens at local midnight in Tehran, which is the
    # evening before in UTC. (Enrolled today: an enrolment day in the future is refused.)
    participant = enrol(
        site=site_a,
        code="NYC-0100",
        timezone="Asia/Tehran",
        language="es",
        enrolled_on=timezone.localdate(),
    )
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    page = client.get("/p/").text
    month1 = participant.assignments.get(wave__slug="m1")
    local_day = month1.local_window()[0]
    assert month1.opens_at.astimezone(UTC).date() != local_day  # the day the page must not show
    with translation.override("es"):
        assert f"{local_day.day} {date_format(local_day, 'F')} {local_day.year}" in page
    assert '<html lang="es"' in page


NEW_YORK = ZoneInfo("America/New_York")


def test_the_last_day_to_answer_is_shown_not_the_midnight_that_closes_the_window(
    client, site_a, enrol, monkeypatch
):
    """The month-1 survey closes at the midnight that starts 27 December 2026 in New York
    (05:00 UTC that day): the home page and the done page say it is open until 26 December,
    at 23:59 that evening too; at midnight it is gone."""
    clock = {"now": local_moment(date(2026, 12, 26), time(23, 58), NEW_YORK)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    participant = enrol(
        site=site_a,
        code="NYC-0101",
        timezone="America/New_York",
        enrolled_on=date(2026, 11, 20),
        now=local_moment(date(2026, 11, 20), time(12), NEW_YORK),
    )
    closes = local_moment(date(2026, 12, 27), time(0), NEW_YORK)
    assert closes == datetime(2026, 12, 27, 5, tzinfo=UTC)
    month1, month3 = (participant.assignments.get(wave__slug=slug) for slug in ("m1", "m3"))
    Assignment.objects.filter(pk__in=[month1.pk, month3.pk]).update(
        status=Assignment.Status.OPEN,
        opens_at=local_moment(date(2026, 12, 13), time(0), NEW_YORK),
        due_at=local_moment(date(2026, 12, 20), time(0), NEW_YORK),
        closes_at=closes,
    )
    _, token = participant_link_create(participant=participant, now=clock["now"])
    client.get(f"/p/{token}")

    home = client.get("/p/").text
    assert "Open until 26 December" in home and "27 December" not in home
    # The done page's next survey (month 3, open now until the same midnight).
    sent = client.post(f"/p/s/{month1.pk}/followup/", {**ANSWERS, "client_id": str(uuid.uuid4())})
    assert sent.status_code == 302
    clock["now"] = closes - timedelta(seconds=1)  # 23:59:59 on the last day
    done = client.get(sent["Location"]).text
    assert "3 months is ready now, until 26 December 2026." in done
    assert "27 December" not in done

    clock["now"] = closes  # midnight: nothing open any more
    home = client.get("/p/").text
    assert "Nothing is due right now" in home and "Open until" not in home


def test_a_survey_that_cannot_be_answered_now_sends_its_page_to_the_home_page_with_why(
    client, site_a, enrol, monkeypatch
):
    """An old tab or a bookmark of a survey: closed (its last day passed, or missed),
    cancelled, or not open yet. The participant lands on the home page, which says why and
    shows what can be answered now; nothing about the survey's questions is shown."""
    now = local_moment(date(2026, 12, 27), time(9), NEW_YORK)
    monkeypatch.setattr(timezone, "now", lambda: now)
    participant = enrol(
        site=site_a,
        code="NYC-0102",
        timezone="America/New_York",
        enrolled_on=date(2026, 11, 20),
        now=local_moment(date(2026, 11, 20), time(12), NEW_YORK),
    )
    month1, month3, month6 = (
        participant.assignments.get(wave__slug=slug) for slug in ("m1", "m3", "m6")
    )
    Assignment.objects.filter(pk=month1.pk).update(
        status=Assignment.Status.OPEN,  # the sweep has not marked it missed yet
        opens_at=local_moment(date(2026, 12, 13), time(0), NEW_YORK),
        closes_at=local_moment(date(2026, 12, 27), time(0), NEW_YORK),
    )
    Assignment.objects.filter(pk=month6.pk).update(status=Assignment.Status.CANCELLED)
    _, token = participant_link_create(participant=participant, now=now)
    client.get(f"/p/{token}")

    closed = client.get(f"/p/s/{month1.pk}/followup/")
    assert closed.status_code == 302 and closed["Location"] == "/p/"
    home = client.get("/p/").text
    assert "“1 month” has closed: the last day to answer it was 26 December 2026." in home
    assert "Your surveys" in home
    assert "has closed" not in client.get("/p/").text  # said once, not on every visit

    later = client.get(f"/p/s/{month3.pk}/followup/")
    assert later["Location"] == "/p/"
    opens = month3.opens_at.astimezone(NEW_YORK).date()
    assert f"“3 months” is not open yet: you can answer it from {opens:%-d %B %Y}." in (
        client.get("/p/").text
    )
    client.get(f"/p/s/{month6.pk}/followup/")
    assert "“6 months” was cancelled. Nothing more is needed." in client.get("/p/").text

    Participant.objects.filter(pk=participant.pk).update(language="es")
    client.get(f"/p/s/{month1.pk}/followup/")
    assert "el último día para contestarla fue el 26 diciembre 2026" in client.get("/p/").text


@pytest.mark.parametrize(
    ("zone", "closes_utc", "last_day"),
    [
        # West of UTC: the closing midnight is 05:00 UTC on the 27th.
        ("America/New_York", datetime(2026, 12, 27, 5, tzinfo=UTC), date(2026, 12, 26)),
        # East of UTC: it is the evening of the 26th in UTC.
        ("Asia/Tehran", datetime(2026, 12, 26, 20, 30, tzinfo=UTC), date(2026, 12, 26)),
        # The night the clocks go back (1 November 2026 in New York): still the 31st.
        ("America/New_York", datetime(2026, 11, 1, 4, tzinfo=UTC), date(2026, 10, 31)),
    ],
)
def test_an_assignments_last_day_is_the_day_before_its_closing_midnight_on_the_local_clock(
    zone, closes_utc, last_day
):
    participant = Participant(timezone=zone)
    assignment = Assignment(participant=participant, closes_at=closes_utc)
    assert assignment.closes_at.astimezone(ZoneInfo(zone)).time() == time(0)
    assert assignment.last_day() == last_day
