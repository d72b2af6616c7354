from datetime import timedelta

import pytest
from django.utils import timezone, translation
from django.utils.formats import date_format

from surveys.links import participant_link_create, participant_links_revoke
from surveys.models import Participant


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
    # Due at local midnight in Tehran, which is the evening before in UTC.
    participant = enrol(
        site=site_a,
        code="NYC-0100",
        timezone="Asia/Tehran",
        language="es",
        enrolled_on=timezone.localdate() + timedelta(days=5),
    )
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    page = client.get("/p/").text
    baseline = participant.assignments.get(wave__slug="baseline")
    local_day = baseline.local_window()[0]
    with translation.override("es"):
        assert f"{local_day.day} {date_format(local_day, 'F')} {local_day.year}" in page
    assert '<html lang="es"' in page
