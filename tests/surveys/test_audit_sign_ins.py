"""Every sign-in, failed sign-in and sign-out of staff is in the audit log, and principal
investigators find their studies' staff's there."""

import pytest
from django.urls import reverse

from surveys.models import AuditEvent, StaffRole
from tests.factories import UserFactory

PASSWORD = "a-long-test-password-31"


@pytest.fixture
def coordinator(staff_user, study, site_a):
    user = staff_user(study=study, role=StaffRole.Role.COORDINATOR, sites=[site_a])
    user.set_password(PASSWORD)
    user.save()
    return user


def _sign_in(client, username, password):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR="203.0.113.9",
    )


def test_a_sign_in_and_a_sign_out_are_audited_with_the_address(client, coordinator):
    assert _sign_in(client, coordinator.username, PASSWORD).status_code == 302
    event = AuditEvent.objects.get(action="login")
    assert event.user == coordinator and event.username == coordinator.username
    assert event.ip == "203.0.113.9"
    client.post(reverse("admin:logout"))
    assert AuditEvent.objects.filter(action="logout", user=coordinator).count() == 1


def test_a_failed_sign_in_names_the_account_but_never_keeps_the_password(client, coordinator):
    reply = _sign_in(client, coordinator.username, "not-the-password-77")
    assert reply.status_code == 200  # the form again, with its error
    event = AuditEvent.objects.get(action="login_failed")
    assert event.user == coordinator and event.ip == "203.0.113.9"
    assert "not-the-password-77" not in str(event.details)
    assert not AuditEvent.objects.filter(action="login").exists()


def test_a_name_that_matches_no_account_is_not_kept(client, db):
    _sign_in(client, "MySecretPassw0rd!", "whatever-it-is-1")  # typed into the wrong box
    event = AuditEvent.objects.get(action="login_failed")
    assert event.user is None and event.username == ""
    assert event.details == {"unknown_account": True}
    assert "MySecretPassw0rd" not in str(event.details) + event.username


def test_a_pi_finds_the_sign_ins_of_their_studys_staff_only(client, study, staff_user, coordinator):
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    outsider = UserFactory(username="someone-elsewhere", is_staff=True)
    outsider.set_password(PASSWORD)
    outsider.save()
    for user in (coordinator, outsider):
        _sign_in(client, user.username, PASSWORD)
        client.post(reverse("admin:logout"))
    client.force_login(pi)
    page = client.get(reverse("admin:surveys_auditevent_changelist") + "?action__exact=login")
    assert page.status_code == 200
    assert coordinator.username in page.text
    assert outsider.username not in page.text
