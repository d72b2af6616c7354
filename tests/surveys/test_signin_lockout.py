"""Staff sign-in lockout: repeated failures lock the account (and, many more, the address) for
a while, even against the right password; the page says why, and it is audited."""

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.urls import reverse

from surveys.models import AuditEvent
from tests.factories import UserFactory

PASSWORD = "a-long-test-password-53"


@pytest.fixture
def staff(db):
    def _make(username):
        user = UserFactory(username=username, is_staff=True)
        user.set_password(PASSWORD)
        user.save()
        return user

    return _make


def _sign_in(client, username, password, ip="198.51.100.7"):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=ip,
    )


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_five_failures_lock_the_account_even_against_the_right_password(client, staff, settings):
    user = staff("dana")
    for _ in range(settings.SIGNIN_FAILURES_PER_ACCOUNT - 1):
        reply = _sign_in(client, "dana", "wrong-password-123")
        assert "Enter a correct username and password" in reply.text
        assert "Too many failed sign-ins" not in reply.text
    reply = _sign_in(client, "dana", "wrong-password-123")  # the last one says it locked
    assert "Too many failed sign-ins" in reply.text
    reply = _sign_in(client, "dana", PASSWORD)
    assert reply.status_code == 200 and not _signed_in(client)
    assert "Too many failed sign-ins" in reply.text and "15 minutes" in reply.text
    refused = AuditEvent.objects.filter(action="login_failed", user=user).order_by("pk").last()
    assert refused.details == {"locked": True}
    # From another network too: it is the account that is locked.
    assert not _signed_in(client) and _sign_in(client, "dana", PASSWORD, ip="192.0.2.44")
    assert not _signed_in(client)


def test_a_locked_account_does_not_lock_the_others(client, staff, settings):
    staff("dana")
    staff("sam")
    for _ in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "dana", "wrong-password-123")
    _sign_in(client, "sam", PASSWORD)
    assert _signed_in(client)


def test_many_failures_from_one_address_lock_the_address(client, staff, settings):
    staff("sam")
    for n in range(settings.SIGNIN_FAILURES_PER_ADDRESS):
        _sign_in(client, f"guess-{n}", "wrong-password-123")  # never the same name twice
    reply = _sign_in(client, "sam", PASSWORD)
    assert not _signed_in(client) and "Too many failed sign-ins" in reply.text
    _sign_in(client, "sam", PASSWORD, ip="192.0.2.44")  # another address is not locked
    assert _signed_in(client)


def test_a_success_before_the_limit_starts_the_count_again(client, staff, settings):
    staff("dana")
    below = settings.SIGNIN_FAILURES_PER_ACCOUNT - 1
    for _ in range(below):
        _sign_in(client, "dana", "wrong-password-123")
    _sign_in(client, "dana", PASSWORD)
    assert _signed_in(client)
    client.logout()
    for _ in range(below):
        _sign_in(client, "dana", "wrong-password-123")
    _sign_in(client, "dana", PASSWORD)
    assert _signed_in(client)


def test_every_sign_in_path_is_refused_while_locked(client, staff, settings):
    user = staff("dana")
    for _ in range(settings.SIGNIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "dana", "wrong-password-123")
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.200")
    assert authenticate(request, username="dana", password=PASSWORD) is None
    assert authenticate(request, username="sam-unknown", password=PASSWORD) is None
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # locked, not changed


@pytest.mark.parametrize(
    "data",
    [{}, {"username": "dana"}, {"password": PASSWORD}, {"username": "", "password": ""}],
)
def test_a_sign_in_with_an_empty_field_is_asked_again_not_a_server_error(client, staff, data):
    """Found by the staff fuzz: no user to check a second factor of was a 500."""
    staff("dana")
    reply = client.post(reverse("admin:login"), data)
    assert reply.status_code == 200 and "This field is required." in reply.text
    assert not _signed_in(client)
