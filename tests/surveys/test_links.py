from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from surveys.links import (
    LinkExpired,
    LinkNotFound,
    participant_link_create,
    participant_link_resolve,
    participant_links_revoke,
)
from surveys.models import Participant, ParticipantLink

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_link_opens_its_participant_and_records_when(site_a, enrol):
    participant = enrol(site=site_a)
    link, token = participant_link_create(participant=participant, now=NOW)
    assert len(token) >= 43  # 256 random bits, URL-safe
    opened = participant_link_resolve(token=token, now=NOW + timedelta(days=3))
    assert opened.participant == participant
    link.refresh_from_db()
    assert link.last_used_at == NOW + timedelta(days=3)


def test_only_a_hash_of_the_token_is_stored(site_a, enrol):
    link, token = participant_link_create(participant=enrol(site=site_a), now=NOW)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM surveys_participantlink")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert token not in stored
    assert link.token_hash in stored


def test_tokens_are_unique_and_unguessable(site_a, enrol):
    participant = enrol(site=site_a)
    tokens = {participant_link_create(participant=participant, now=NOW)[1] for _ in range(50)}
    assert len(tokens) == 50
    with pytest.raises(LinkNotFound):
        participant_link_resolve(token="a" * 43, now=NOW)
    with pytest.raises(LinkNotFound):
        participant_link_resolve(token="", now=NOW)
    with pytest.raises(LinkNotFound):
        participant_link_resolve(token="x" * 5000, now=NOW)


def test_a_link_expires(site_a, enrol, settings):
    settings.PARTICIPANT_LINK_DAYS = 30
    _, token = participant_link_create(participant=enrol(site=site_a), now=NOW)
    participant_link_resolve(token=token, now=NOW + timedelta(days=29))
    with pytest.raises(LinkExpired):
        participant_link_resolve(token=token, now=NOW + timedelta(days=30))


def test_revoked_links_and_withdrawn_participants_open_nothing(site_a, enrol, coordinator_a):
    participant = enrol(site=site_a)
    _, first = participant_link_create(participant=participant, now=NOW)
    _, second = participant_link_create(participant=participant, now=NOW)
    assert participant_links_revoke(participant=participant, revoked_by=coordinator_a, now=NOW) == 2
    for token in (first, second):
        with pytest.raises(LinkExpired):
            participant_link_resolve(token=token, now=NOW)
    _, third = participant_link_create(participant=participant, now=NOW)
    Participant.objects.filter(pk=participant.pk).update(status=Participant.Status.WITHDRAWN)
    with pytest.raises(LinkExpired):
        participant_link_resolve(token=third, now=NOW)


def test_the_command_prints_a_working_link(site_a, enrol, capsys, settings):
    settings.SITE_URL = "https://study.example.org"
    participant = enrol(site=site_a, code="NYC-0042")
    call_command("participant_link", "--study", "trial", "--participant", "NYC-0042")
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://study.example.org/p/")
    opened = participant_link_resolve(token=url.rsplit("/", 1)[1])
    assert opened.participant == participant


@pytest.mark.parametrize(
    "args, message",
    [
        (["--participant", "NOPE"], "No participant"),
        (["--participant", "NYC-0042", "--days", "0"], "at least 1"),
    ],
)
def test_the_command_refuses_clearly(site_a, enrol, args, message):
    enrol(site=site_a, code="NYC-0042")
    with pytest.raises(CommandError, match=message):
        call_command("participant_link", "--study", "trial", *args)
    assert not ParticipantLink.objects.exists()


def test_a_coordinator_revokes_links_in_the_admin_only_for_their_site(
    client, coordinator_a, site_a, site_b, enrol
):
    mine = enrol(site=site_a, code="NYC-1")
    theirs = enrol(site=site_b, code="LDN-1")
    _, my_token = participant_link_create(participant=mine)
    _, their_token = participant_link_create(participant=theirs)
    client.force_login(coordinator_a)
    client.post(
        reverse("admin:surveys_participant_changelist"),
        {"action": "revoke_links", "_selected_action": [mine.pk, theirs.pk]},
    )
    with pytest.raises(LinkExpired):
        participant_link_resolve(token=my_token)
    assert participant_link_resolve(token=their_token).participant == theirs
    page = client.get(reverse("admin:surveys_participant_change", args=[mine.pk]))
    assert "Participant links" in page.text or "participant link" in page.text.lower()
