"""Staff sessions end (issue 9, staff access): after STAFF_SESSION_IDLE_MINUTES without a
request, and STAFF_SESSION_MAX_HOURS after sign-in however busy; the sign-out is audited with
its reason, and the next page asks for the password again."""

import time

from django.urls import reverse

from surveys.models import AuditEvent
from surveys.signin import SEEN_AT, SIGNED_IN_AT


def _shift(client, **ago_seconds) -> None:
    session = client.session
    now = int(time.time())
    for key, ago in ago_seconds.items():
        session[key] = now - ago
    session.save()


def _signed_in(client) -> bool:
    page = client.get(reverse("admin:index"))
    return page.status_code == 200


def test_a_staff_session_starts_its_clocks_at_sign_in(client, coordinator_a):
    client.force_login(coordinator_a)
    session = client.session
    assert abs(session[SIGNED_IN_AT] - time.time()) < 5
    assert abs(session[SEEN_AT] - time.time()) < 5
    assert _signed_in(client)


def test_half_an_hour_idle_signs_the_user_out(client, coordinator_a, settings):
    settings.STAFF_SESSION_IDLE_MINUTES = 30
    client.force_login(coordinator_a)
    _shift(client, staff_seen_at=29 * 60)
    assert _signed_in(client)  # 29 minutes: still in, and the clock starts again
    assert time.time() - client.session[SEEN_AT] < 5
    _shift(client, staff_seen_at=31 * 60)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 302 and reverse("admin:login") in page["Location"]
    assert not _signed_in(client)  # for good: the session is gone
    event = AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT).get()
    assert event.user == coordinator_a and event.details == {"expired": "idle"}


def test_a_busy_session_still_ends_twelve_hours_after_sign_in(client, coordinator_a, settings):
    settings.STAFF_SESSION_MAX_HOURS = 12
    client.force_login(coordinator_a)
    _shift(client, staff_signed_in_at=11 * 3600, staff_seen_at=10)
    assert _signed_in(client)
    _shift(client, staff_signed_in_at=12 * 3600 + 60, staff_seen_at=10)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 302 and reverse("admin:login") in page["Location"]
    event = AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT).get()
    assert event.details == {"expired": "too long"}


def test_signing_out_by_hand_is_audited_without_a_reason(client, coordinator_a):
    client.force_login(coordinator_a)
    client.post(reverse("admin:logout"))
    event = AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT).get()
    assert event.details == {}
