"""Staff passwords follow the rules in AUTH_PASSWORD_VALIDATORS wherever staff set them: a
superuser adding an account or setting someone's password in the admin, and a staff member
changing their own. Too short (under 12), too common, all digits, or too like the account's
name is refused with the reason, and nothing is saved; a strong password is accepted."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import UserFactory

User = get_user_model()
USERNAME = "dana.whitfield"
CURRENT = "a-long-test-password-123"  # the factory's
STRONG = "Lantern-orbit-quietly-73"
WEAK = [
    pytest.param("Xk3#mQ9z-p1", "This password is too short.", id="eleven-characters"),
    pytest.param("Qwerty123456", "This password is too common.", id="common"),
    pytest.param("739184620571", "This password is entirely numeric.", id="all-digits"),
    pytest.param("Dana.Whitfield7", "The password is too similar to the username.", id="like-name"),
]


@pytest.fixture
def superuser_client(client, db):
    root = User.objects.create_superuser("root", "root@example.org", STRONG)
    client.force_login(root)
    return client


@pytest.fixture
def dana(db):
    return UserFactory(username=USERNAME, is_staff=True, first_name="Dana", last_name="Whitfield")


def add_account(client, password: str):
    return client.post(
        reverse("admin:auth_user_add"),
        {
            "username": USERNAME,
            "usable_password": "true",
            "password1": password,
            "password2": password,
        },
    )


@pytest.mark.parametrize(("password", "reason"), WEAK)
def test_a_weak_password_is_refused_when_a_superuser_adds_an_account(
    superuser_client, password, reason
):
    reply = add_account(superuser_client, password)

    assert reply.status_code == 200  # the form again
    assert reason in reply.text
    assert not User.objects.filter(username=USERNAME).exists()


def test_a_strong_password_is_accepted_when_a_superuser_adds_an_account(superuser_client):
    reply = add_account(superuser_client, STRONG)

    assert reply.status_code == 302
    assert User.objects.get(username=USERNAME).check_password(STRONG)


@pytest.mark.parametrize(("password", "reason"), WEAK)
def test_a_weak_password_is_refused_when_a_superuser_sets_someones_password(
    superuser_client, dana, password, reason
):
    reply = superuser_client.post(
        reverse("admin:auth_user_password_change", args=[dana.pk]),
        {"usable_password": "true", "password1": password, "password2": password},
    )

    assert reply.status_code == 200
    assert reason in reply.text
    dana.refresh_from_db()
    assert dana.check_password(CURRENT)


def test_a_strong_password_is_accepted_when_a_superuser_sets_someones_password(
    superuser_client, dana
):
    reply = superuser_client.post(
        reverse("admin:auth_user_password_change", args=[dana.pk]),
        {"usable_password": "true", "password1": STRONG, "password2": STRONG},
    )

    assert reply.status_code == 302
    dana.refresh_from_db()
    assert dana.check_password(STRONG)


def change_own(client, password: str):
    return client.post(
        reverse("admin:password_change"),
        {"old_password": CURRENT, "new_password1": password, "new_password2": password},
    )


@pytest.mark.parametrize(("password", "reason"), WEAK)
def test_a_weak_password_is_refused_when_staff_change_their_own(client, dana, password, reason):
    client.force_login(dana)

    reply = change_own(client, password)

    assert reply.status_code == 200
    assert reason in reply.text
    dana.refresh_from_db()
    assert dana.check_password(CURRENT)


def test_a_strong_password_is_accepted_when_staff_change_their_own(client, dana):
    client.force_login(dana)

    reply = change_own(client, STRONG)

    assert reply.status_code == 302 and reply["Location"] == reverse("admin:password_change_done")
    dana.refresh_from_db()
    assert dana.check_password(STRONG)
