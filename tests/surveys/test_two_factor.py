"""Two-factor sign-in for staff (issue 9): authenticator-app codes (RFC 6238), asked at sign-in
of those who turned it on, required for principal investigators when their study says so."""

import re
import time

import pytest
from django.db import connection

from surveys import totp
from surveys.models import AuditEvent, StaffRole, StaffTwoFactor
from surveys.two_factor import two_factor_start

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of ASCII "12345678901234567890"


@pytest.mark.parametrize(
    "unix_time, code",
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_codes_are_those_of_rfc_6238(unix_time, code):
    assert totp.code_at(RFC_SECRET, totp.step_now(unix_time), digits=8) == code


def test_a_code_works_a_step_either_side_and_never_twice():
    secret = totp.secret_new()
    now = 1_700_000_000.0
    step = totp.step_now(now)
    assert totp.verify(secret, totp.code_at(secret, step - 1), now=now) == step - 1
    assert totp.verify(secret, totp.code_at(secret, step + 1), now=now) == step + 1
    assert totp.verify(secret, totp.code_at(secret, step - 2), now=now) is None
    assert totp.verify(secret, totp.code_at(secret, step), now=now, last_step=step) is None
    assert totp.verify(secret, "12 34", now=now) is None  # too short


@pytest.fixture
def pi(staff_user, study):
    user = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")
    user.set_password("a-long-pass-phrase-1")
    user.save()
    return user


def turned_on(user) -> StaffTwoFactor:
    device = two_factor_start(user=user)
    device.confirmed_at = device.created_at
    device.save()
    return device


def sign_in(client, code: str = ""):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "pi", "password": "a-long-pass-phrase-1", "code": code},
        REMOTE_ADDR="198.51.100.20",
    )


def _errors(html: str) -> list[str]:
    return re.findall(r'<p class="errornote">(.*?)</p>', html, re.S)


def current_code(device) -> str:
    return totp.code_at(device.secret, totp.step_now())


def test_with_two_factor_on_the_password_alone_is_refused_and_audited(client, pi):
    device = turned_on(pi)
    refused = sign_in(client)
    assert refused.status_code == 200
    # the same words as a wrong password: a guesser cannot tell the password was right
    assert "the current code of your authenticator app" in refused.text
    wrong_password = client.post(
        "/admin/login/", {"username": "pi", "password": "not-it", "code": ""}
    )
    assert _errors(wrong_password.text) == _errors(refused.text)
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED).order_by("id")[0]
    assert failed.details == {"reason": "two-factor code"} and failed.username == "pi"
    code = current_code(device)
    assert sign_in(client, code).status_code == 302  # in
    client.logout()
    again = sign_in(client, code)  # the same code, seen over a shoulder: once only
    assert again.status_code == 200 and "_auth_user_id" not in client.session


def test_wrong_codes_count_towards_the_lockout(client, pi, settings):
    settings.SIGNIN_FAILURES_PER_ACCOUNT = 3
    device = turned_on(pi)
    for _ in range(3):
        sign_in(client, "000000" if current_code(device) != "000000" else "111111")
    refused = sign_in(client, current_code(device))  # the right code, too late
    assert "Too many failed sign-ins" in refused.text


def test_the_sign_in_page_has_the_code_box(client, db):
    page = client.get("/admin/login/")
    assert 'name="code"' in page.text and 'autocomplete="one-time-code"' in page.text


def test_a_pi_of_a_study_that_requires_it_must_turn_it_on_first(client, pi, study):
    study.pi_two_factor_required = True
    study.save()
    assert sign_in(client).status_code == 302  # not on yet: the password signs in…
    blocked = client.get("/admin/surveys/participant/")
    assert blocked.status_code == 302 and blocked["Location"] == "/admin/two-factor/"  # …to here
    page = client.get("/admin/two-factor/")
    assert "A study you lead requires two-factor sign-in" in page.text
    key = re.search(r'id="two-factor-key"[^>]*>([A-Z2-7 ]+)<', page.text).group(1)
    secret = key.replace(" ", "")
    wrong = client.post("/admin/two-factor/", {"code": "000000"})
    assert "not the current one" in wrong.text or totp.code_at(secret, totp.step_now()) == "000000"
    on = client.post("/admin/two-factor/", {"code": totp.code_at(secret, totp.step_now())})
    assert "Two-factor sign-in is on" in on.text
    assert client.get("/admin/surveys/participant/").status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TWO_FACTOR_ON, username="pi").exists()
    with connection.cursor() as cursor:  # the secret is encrypted at rest
        cursor.execute("SELECT secret FROM surveys_stafftwofactor")
        (stored,) = cursor.fetchone()
    assert secret not in stored and stored.startswith("gAAAA")


def test_a_pi_of_a_study_that_does_not_require_it_is_not_stopped(client, pi):
    sign_in(client)
    assert client.get("/admin/surveys/participant/").status_code == 200


def test_a_coordinator_is_never_stopped_by_the_pi_rule(client, study, coordinator_a):
    study.pi_two_factor_required = True
    study.save()
    client.force_login(coordinator_a)
    assert client.get("/admin/surveys/participant/").status_code == 200


def test_codes_are_checked_against_the_clock_now(pi):
    device = turned_on(pi)
    from surveys.two_factor import two_factor_verify

    old = totp.code_at(device.secret, totp.step_now(time.time() - 300))
    assert two_factor_verify(user=pi, code=old) is False
    assert two_factor_verify(user=pi, code=current_code(device)) is True


def test_codes_in_other_digits_are_refused_not_a_crash(pi):
    device = turned_on(pi)
    from surveys.two_factor import two_factor_verify

    assert two_factor_verify(user=pi, code="١٢٣٤٥٦") is False  # Arabic-Indic digits
    assert two_factor_verify(user=pi, code="²²²²²²") is False
    assert totp.verify(device.secret, "１２３４５６") is None  # full-width


def test_a_pi_without_it_gets_403_from_the_api_too(client, pi, study):
    from surveys.tokens import SCOPES, staff_token_create

    _, key = staff_token_create(user=pi, name="made before the rule", scopes=SCOPES)
    study.pi_two_factor_required = True
    study.save()
    sign_in(client)
    for reply in (
        client.get("/api/v1/studies/"),
        client.get("/api/v1/call-list/"),
        client.get("/api/v1/studies/", HTTP_AUTHORIZATION=f"Bearer {key}"),
    ):
        assert reply.status_code == 403 and "two-factor" in reply.json()["detail"]
    device = turned_on(pi)
    # turned on elsewhere: this password-only session ends, and a sign-in with the code works
    assert client.get("/api/v1/studies/").status_code == 401
    assert sign_in(client, current_code(device)).status_code == 302
    assert client.get("/api/v1/studies/").status_code == 200


def test_turning_it_on_ends_the_users_other_password_only_sessions(client, pi):
    from django.test import Client

    laptop, phone = client, Client()
    sign_in(laptop)
    sign_in(phone)
    assert laptop.get("/admin/").status_code == 200
    page = phone.get("/admin/two-factor/").text
    secret = re.search(r'id="two-factor-key"[^>]*>([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    phone.post("/admin/two-factor/", {"code": totp.code_at(secret, totp.step_now())})
    assert phone.get("/admin/").status_code == 200  # the session that turned it on goes on
    ended = laptop.get("/admin/")
    assert ended.status_code == 302 and "/admin/login/" in ended["Location"]
    event = AuditEvent.objects.filter(action=AuditEvent.Action.LOGOUT).latest("id")
    assert event.details == {"expired": "two-factor sign-in turned on"}


def test_each_showing_of_the_set_up_page_has_a_new_key(client, pi):
    sign_in(client)
    keys = set()
    for _ in range(2):
        page = client.get("/admin/two-factor/").text
        keys.add(re.search(r'id="two-factor-key"[^>]*>([A-Z2-7 ]+)<', page).group(1))
    assert len(keys) == 2  # a key seen once is not the one confirmed later


def test_an_administrator_removing_it_is_audited(client, pi, django_user_model):
    turned_on(pi)
    root = django_user_model.objects.create_superuser("root", "root@example.org", "pw-long-123!")
    client.force_login(root)
    device = StaffTwoFactor.objects.get(user=pi)
    reply = client.post(f"/admin/surveys/stafftwofactor/{device.pk}/delete/", {"post": "yes"})
    assert reply.status_code == 302 and not StaffTwoFactor.objects.exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.TWO_FACTOR_OFF)
    assert event.username == "root" and event.details == {"staff": "pi"}


def test_the_set_up_address_is_what_authenticator_apps_read():
    uri = totp.provisioning_uri("ABCDEFGH", account="ana/lead", issuer="Recovery study")
    assert uri.startswith("otpauth://totp/Recovery%20study:ana%2Flead?secret=ABCDEFGH&")
    assert "issuer=Recovery%20study" in uri and "period=30" in uri and "digits=6" in uri


def test_the_two_rules_read_the_users_two_factor_state_once_a_request(client, pi, study):
    """The middleware (a session that passed no code) and the API's permission both ask on
    every staff request: the statement that loads the session's user answers both (no query
    of its own), and the answers still hold."""
    from django.test.utils import CaptureQueriesContext

    study.pi_two_factor_required = True
    study.save()
    sign_in(client)

    def two_factor_reads(path):
        """The reply, and how many statements read the two-factor state, once it is checked
        that the one reading it is the one reading the user (on PostgreSQL a prepared
        statement, run by name after its first use on a connection)."""
        with CaptureQueriesContext(connection) as queries:
            reply = client.get(path)
        run = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("PREPARE")]
        state = [s for s in run if "surveys_stafftwofactor" in s or "user_two_factor" in s]
        user = [
            s for s in run if '"auth_user"' in s or "auth_user u" in s or "user_two_factor" in s
        ]
        assert state == user, (state, user)
        return reply, len(state)

    api, reads = two_factor_reads("/api/v1/studies/")
    assert api.status_code == 403 and reads == 1
    admin, reads = two_factor_reads("/admin/")
    assert admin.status_code == 302 and admin["Location"] == "/admin/two-factor/" and reads == 1
    study.pi_two_factor_required = False
    study.save()
    api, reads = two_factor_reads("/api/v1/studies/")
    assert api.status_code == 200 and reads == 1
