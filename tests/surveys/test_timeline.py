"""The participant timeline, and opening a response (audited; identifiers hidden from
researchers)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from surveys.consent import ConsentInput
from surveys.models import AuditEvent, ContactAttempt, Item, Message, Response
from surveys.services import participant_status_change


@pytest.fixture
def followed(site_a, enrol, coordinator_a):
    participant = enrol(
        site=site_a,
        code="NYC-0700",
        enrolled_on=timezone.localdate() - timedelta(days=40),
        contact={"email": "kim@example.org"},
        consent=ConsentInput(
            method="written",
            consented_on=timezone.localdate() - timedelta(days=40),
            obtained_by=coordinator_a,
        ),
    )
    baseline = participant.assignments.get(wave__slug="baseline")
    version = baseline.wave.instruments.get().versions.get()
    Item.objects.create(
        version=version, position=999, variable="sponsor_name", kind="text",
        label={"en": "Your sponsor's first name"}, identifier=True,
    )  # fmt: skip
    Item.objects.create(
        version=version, position=1000, variable="week_note", kind="notes",
        label={"en": "Anything else about your week?"},
    )  # fmt: skip
    now = timezone.now()
    Response.objects.create(
        assignment=baseline, instrument=version.instrument, instrument_version=version,
        answers={"sponsor_name": "Marta", "gender": "2", "week_note": "Saw Joe at the clinic"},
        status="submitted", started_at=now, submitted_at=now,
    )  # fmt: skip
    sent = Message.objects.filter(assignment__participant=participant, assignment__wave__slug="m1")
    assert sent.filter(sequence=0).update(status="sent", sent_at=now) == 1
    ContactAttempt.objects.create(
        participant=participant, method="call", outcome="no_answer",
        note="Rang twice, voicemail full", attempted_at=now, by=coordinator_a,
    )  # fmt: skip
    participant_status_change(
        participant=participant,
        status="lost",
        reason="No reply in 3 months",
        changed_by=coordinator_a,
    )
    return participant


def timeline(client, participant):
    return client.get(reverse("admin:surveys_participant_timeline", args=[participant.pk]))


def test_the_timeline_shows_everything_that_happened(client, followed, coordinator_a):
    client.force_login(coordinator_a)
    change = client.get(reverse("admin:surveys_participant_change", args=[followed.pk])).text
    assert reverse("admin:surveys_participant_timeline", args=[followed.pk]) in change
    page = timeline(client, followed)
    assert page.status_code == 200
    text = page.text
    for expected in (
        "Enrolled",
        "Consent: Signed on paper",
        "Baseline: window opens",
        "Baseline: Baseline submitted",
        "Invitation for 1 month by E-mail",
        "Phone call: No answer",
        "Rang twice, voicemail full",
        "Status: Active → Lost to follow-up",
        "No reply in 3 months",
    ):
        assert expected in text, expected
    response = Response.objects.get()
    assert reverse("admin:surveys_response_change", args=[response.pk]) in text


def test_the_timeline_gives_each_surveys_dates_on_the_participants_calendar(
    client, site_a, enrol, coordinator_a
):
    """Found by review: the timeline printed the UTC dates of ``due_at`` and ``closes_at``. For
    Tehran (UTC+03:30) the due day's midnight is 20:30 the day before in UTC, so the timeline
    said a day earlier than the call list and the participant's page."""
    from datetime import date

    person = enrol(
        site=site_a, code="NYC-0710", timezone="Asia/Tehran", enrolled_on=date(2026, 3, 1)
    )
    month1 = person.assignments.get(wave__slug="m1")
    assert month1.due_at.date() != month1.due_day()  # the trap: 20:30 UTC, the day before
    client.force_login(coordinator_a)
    text = timeline(client, person).text
    expected = (
        f"due {month1.due_day():%Y-%m-%d}, last day {month1.last_day():%Y-%m-%d} (Asia/Tehran)"
    )
    assert expected in text


def test_researchers_see_the_timeline_without_the_contact_log(client, followed, researcher):
    client.force_login(researcher)
    text = timeline(client, followed).text
    assert "Baseline: window opens" in text
    assert "Rang twice" not in text and "Phone call" not in text
    assert "Status: Active → Lost to follow-up" in text and "No reply in 3 months" not in text
    change = client.get(reverse("admin:surveys_participant_change", args=[followed.pk])).text
    assert "Lost to follow-up" in change and "No reply in 3 months" not in change
    assert "kim@example.org" not in text


def test_another_sites_coordinator_cannot_open_the_timeline(client, followed, staff_user, site_b):
    other = staff_user(study=site_b.study, role="coordinator", sites=[site_b], username="ldn")
    client.force_login(other)
    assert timeline(client, followed).status_code == 404


def test_the_timeline_takes_the_same_queries_however_long_the_history(
    client, followed, coordinator_a
):
    client.force_login(coordinator_a)
    with CaptureQueriesContext(connection) as short:
        timeline(client, followed)
    month3 = followed.assignments.get(wave__slug="m3")
    for n in range(20):
        ContactAttempt.objects.create(
            participant=followed, method="text", outcome="no_answer",
            attempted_at=timezone.now(), by=coordinator_a,
        )  # fmt: skip
        Message.objects.create(
            assignment=month3, sequence=50 + n, channel="sms", scheduled_at=timezone.now(),
            status="sent", sent_at=timezone.now(),
        )  # fmt: skip
    with CaptureQueriesContext(connection) as long:
        page = timeline(client, followed)
    assert page.text.count("Text message: No answer") == 20
    assert page.text.count("for 3 months by Text message (SMS)") == 20
    assert len(long) == len(short)


def test_opening_a_response_is_audited_and_identifiers_are_hidden_from_researchers(
    client, followed, coordinator_a, researcher
):
    response = Response.objects.get()
    url = reverse("admin:surveys_response_change", args=[response.pk])
    before = AuditEvent.objects.filter(action="response_view").count()
    client.force_login(coordinator_a)
    page = client.get(url).text
    assert "Marta" in page and "Which best describes your gender?" in page
    assert "Saw Joe at the clinic" in page
    event = AuditEvent.objects.filter(action="response_view").latest("at")
    assert (event.user, event.participant, event.object_id) == (
        coordinator_a,
        followed,
        str(response.pk),
    )
    assert "Marta" not in str(event.details)
    client.force_login(researcher)
    page = client.get(url).text
    assert "Marta" not in page and "(identifier: hidden)" in page
    # Free text may name people: researchers read it nowhere (exports leave it out too).
    assert "Saw Joe" not in page and "(free text: hidden)" in page
    assert AuditEvent.objects.filter(action="response_view").count() == before + 2
