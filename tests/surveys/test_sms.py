"""Text messages: the Twilio backend (its HTTP calls stubbed at twilio's HttpClient boundary),
how provider failures become transient or permanent errors, and the inbound-SMS webhook that
turns a signed STOP into an opt-out and START into an opt-in."""

import json
import logging
import socket
import traceback
from datetime import UTC, date, datetime, timedelta
from http.client import RemoteDisconnected

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from urllib3.connection import HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)

from surveys import sms
from surveys.dispatch import message_send, reminders_dispatch
from surveys.models import Assignment, Message, Participant
from surveys.optout import OPTED_OUT_REASON, sms_opt_out

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-5f1c"
FROM_NUMBER = "+15550100999"
SERVICE_SID = "MG" + "1" * 32
SITE_URL = "https://study.example.org"
HOOK = "/hooks/sms/twilio"
PHONE = "+15550104477"
BODY = "Your 3-month survey is ready: https://study.example.org/p/secret-token"


# --- Twilio backend ---------------------------------------------------------------------------


class FakeTwilioHttp(HttpClient):
    """Twilio's HTTP boundary: records each request and answers with a canned response (or
    raises a requests error, as the real client does when the network fails)."""

    def __init__(self, status: int = 201, payload=None, *, text: str | None = None, error=None):
        super().__init__(logger=logging.getLogger("tests.twilio"), is_async=False)
        self.status = status
        self.text = text if text is not None else json.dumps(payload or {})
        self.error = error
        self.requests: list[dict] = []

    def request(
        self,
        method,
        uri,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ):
        self.requests.append({"method": method, "uri": uri, "data": data, "auth": auth})
        if self.error is not None:
            raise self.error
        return TwilioResponse(self.status, self.text)


def created(sid: str = "SM" + "a" * 32) -> FakeTwilioHttp:
    return FakeTwilioHttp(
        201,
        {"sid": sid, "account_sid": ACCOUNT_SID, "to": PHONE, "body": BODY, "status": "queued"},
    )


def twilio_error(status: int, code: int | None = None) -> FakeTwilioHttp:
    # Twilio's error messages quote the number: none of it may reach our reasons.
    payload = {"status": status, "message": f"The 'To' number {PHONE} is not valid: {BODY}"}
    if code is not None:
        payload["code"] = code
    return FakeTwilioHttp(status, payload)


@pytest.fixture
def twilio_settings(settings):
    settings.SMS_BACKEND = "surveys.sms.TwilioBackend"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = FROM_NUMBER
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    return settings


def send_failing(http: FakeTwilioHttp) -> sms.SmsError:
    with pytest.raises(sms.SmsError) as caught:
        sms.TwilioBackend(http_client=http).send(to=PHONE, body=BODY)
    return caught.value


def assert_private(error: sms.SmsError) -> None:
    """Neither the reason nor a logged traceback holds the number or the text."""
    text = error.reason + "".join(traceback.format_exception(error))
    for secret in (PHONE, PHONE[2:], "secret-token", "survey is ready"):
        assert secret not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_twilio_backend_posts_the_message_with_account_credentials_and_returns_the_sid(
    twilio_settings,
):
    http = created("SM" + "b" * 32)

    provider_id = sms.TwilioBackend(http_client=http).send(to=PHONE, body=BODY)

    assert provider_id == "SM" + "b" * 32
    [request] = http.requests
    assert request["method"] == "POST"
    assert (
        request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    )
    assert request["auth"] == (ACCOUNT_SID, AUTH_TOKEN)
    assert request["data"] == {"To": PHONE, "From": FROM_NUMBER, "Body": BODY}


def test_twilio_backend_sends_through_a_messaging_service_when_configured(twilio_settings):
    twilio_settings.TWILIO_FROM_NUMBER = ""
    twilio_settings.TWILIO_MESSAGING_SERVICE_SID = SERVICE_SID
    http = created()

    sms.TwilioBackend(http_client=http).send(to=PHONE, body=BODY)

    assert http.requests[0]["data"] == {
        "To": PHONE,
        "MessagingServiceSid": SERVICE_SID,
        "Body": BODY,
    }


def test_the_setting_selects_the_twilio_backend(twilio_settings):
    backend = sms.sms_backend()
    assert isinstance(backend, sms.TwilioBackend)  # built without touching the network


def test_a_rate_limit_is_transient_and_nothing_went_out(twilio_settings):
    error = send_failing(twilio_error(429, 20429))

    assert isinstance(error, sms.SmsTransientError)
    assert error.status == 429
    assert not error.may_have_been_sent  # refused before anything was created: retried
    assert "HTTP 429" in error.reason
    assert_private(error)


@pytest.mark.parametrize(
    ("http", "status"),
    [
        (twilio_error(500), 500),
        (FakeTwilioHttp(503, text="<html>Service Unavailable</html>"), 503),
    ],
    ids=["server-error", "unavailable-not-json"],
)
def test_a_provider_failure_may_have_sent_the_text(twilio_settings, http, status):
    """Twilio had the request: it may have queued the text before failing to answer, so a
    retry could deliver it twice."""
    error = send_failing(http)

    assert isinstance(error, sms.SmsTransientError)
    assert error.status == status
    assert error.may_have_been_sent
    assert f"HTTP {status}" in error.reason
    assert_private(error)


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        (400, 21211, "invalid phone number"),
        (400, 21610, "recipient unsubscribed"),
        (400, 21614, "not a mobile number"),
        (400, 21999, "provider refused the message"),
        (404, None, "provider refused the message"),
    ],
)
def test_refusals_are_permanent_with_a_reason_naming_the_cause(
    twilio_settings, status, code, reason
):
    error = send_failing(twilio_error(status, code))

    assert isinstance(error, sms.SmsPermanentError)
    assert (error.status, error.code) == (status, code or status)
    assert error.reason.startswith(reason)
    assert_private(error)


TWILIO_HOST = "api.twilio.com"
MESSAGES_URL = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def never_connected(reason) -> requests.ConnectionError:
    """What requests raises when urllib3 could not open the connection at all."""
    return requests.ConnectionError(MaxRetryError(None, MESSAGES_URL, reason))


def network_failures():
    """(error, may the text have gone?): the errors built as urllib3 and requests build them
    for each failure (the HTTP client is stubbed, so nothing really connects)."""
    conn = HTTPSConnection(TWILIO_HOST, 443)
    return [
        pytest.param(
            never_connected(NewConnectionError(conn, "Failed to establish a new connection")),
            False,
            id="refused",
        ),
        pytest.param(
            never_connected(
                NameResolutionError(TWILIO_HOST, conn, socket.gaierror(-2, "Name not known"))
            ),
            False,
            id="dns",
        ),
        pytest.param(
            requests.ConnectTimeout(
                MaxRetryError(None, MESSAGES_URL, ConnectTimeoutError(conn, "timed out"))
            ),
            False,
            id="connect-timeout",
        ),
        pytest.param(requests.ReadTimeout(f"read timed out sending to {PHONE}"), True, id="read"),
        pytest.param(
            requests.ConnectionError(
                ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
            ),
            True,
            id="dropped",
        ),
        pytest.param(
            requests.ConnectionError(
                ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
            ),
            True,
            id="reset",
        ),
        pytest.param(
            requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
            True,
            id="answer-cut-short",
        ),
        pytest.param(
            requests.exceptions.SSLError(MaxRetryError(None, MESSAGES_URL, SSLError("bad record"))),
            True,
            id="tls-error",
        ),
        pytest.param(requests.ConnectionError("unexplained"), True, id="unknown"),
    ]


@pytest.mark.parametrize(("exc", "may_have_been_sent"), network_failures())
def test_network_failures_are_retried_only_when_the_request_never_left(
    twilio_settings, exc, may_have_been_sent
):
    error = send_failing(FakeTwilioHttp(error=exc))

    assert isinstance(error, sms.SmsTransientError)
    assert error.status is None
    # Only a connection never made is safe to retry; after the request left, a retry could
    # deliver the text twice, so the sender is told.
    assert error.may_have_been_sent is may_have_been_sent
    assert_private(error)


# --- Sending a text: retried, or left to a person -------------------------------------------


@pytest.fixture
def text_claimed(twilio_settings, site_a, enrol, monkeypatch):
    """(text, http, noon): a participant's month-1 invitation by SMS, due at noon New York
    time on 3 June 2026 and just claimed by a dispatch cycle; Twilio's HTTP client, which
    accepts the text until a test sets its ``error`` or status; and that noon."""
    noon = datetime(2026, 6, 3, 16, tzinfo=UTC)
    participant = enrol(
        site=site_a,
        code="NYC-0080",
        enrolled_on=date(2026, 5, 9),
        timezone="America/New_York",
        contact={"phone": PHONE},
        now=noon - timedelta(days=25),
    )
    month1 = participant.assignments.get(wave__slug="m1")
    Assignment.objects.filter(pk=month1.pk).update(
        status=Assignment.Status.OPEN,
        opens_at=noon - timedelta(days=2),
        closes_at=noon + timedelta(days=10),
    )
    text = Message.objects.filter(assignment=month1).earliest("sequence")
    assert text.channel == Message.Channel.SMS
    Message.objects.filter(assignment__participant=participant).update(
        scheduled_at=noon + timedelta(days=5)
    )
    Message.objects.filter(pk=text.pk).update(scheduled_at=noon)
    assert reminders_dispatch(now=noon, enqueue=False).claimed_ids == [text.pk]
    http = created()
    monkeypatch.setattr("twilio.http.http_client.TwilioHttpClient", lambda **kwargs: http)
    return text, http, noon


@pytest.mark.parametrize(
    "error",
    [
        requests.ReadTimeout("read timed out"),
        requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("x"))),
        "HTTP 500",
    ],
    ids=["read-timeout", "dropped", "server-error"],
)
def test_a_text_that_may_have_gone_out_goes_to_review_and_is_never_sent_again(text_claimed, error):
    text, http, noon = text_claimed
    if error == "HTTP 500":
        http.status, http.text = 500, json.dumps({"status": 500, "message": "Internal error"})
    else:
        http.error = error

    assert message_send(message_id=text.pk, now=noon) == Message.Status.REVIEW
    text.refresh_from_db()
    assert text.status == Message.Status.REVIEW
    assert "it may have gone out" in text.reason
    # The task delivered again, the next cycles, the sweep: nothing reaches Twilio again.
    assert message_send(message_id=text.pk, now=noon + timedelta(minutes=1)) == "review"
    for minutes in (2, 20, 60):
        cycle = reminders_dispatch(now=noon + timedelta(minutes=minutes), enqueue=False)
        assert (cycle.claimed, cycle.requeued) == (0, 0)
    assert len(http.requests) == 1


def test_a_text_whose_connection_was_refused_is_retried_and_sent_once(text_claimed):
    from surveys.dispatch import RetryLater

    text, http, noon = text_claimed
    http.error = never_connected(
        NewConnectionError(HTTPSConnection(TWILIO_HOST, 443), "Connection refused")
    )

    with pytest.raises(RetryLater):
        message_send(message_id=text.pk, now=noon)
    text.refresh_from_db()
    assert text.status == Message.Status.SENDING
    assert text.reason.endswith("(will retry)")
    http.error = None
    assert message_send(message_id=text.pk, now=noon + timedelta(minutes=1)) == "sent"
    assert len(http.requests) == 2


@pytest.mark.parametrize(
    ("blank", "named"),
    [
        (["TWILIO_ACCOUNT_SID"], "TWILIO_ACCOUNT_SID"),
        (["TWILIO_AUTH_TOKEN"], "TWILIO_AUTH_TOKEN"),
        (["TWILIO_FROM_NUMBER"], "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"),
    ],
)
def test_twilio_backend_refuses_to_start_without_its_settings(twilio_settings, blank, named):
    for name in blank:
        setattr(twilio_settings, name, "")

    with pytest.raises(ImproperlyConfigured, match=named):
        sms.sms_backend()


# --- Inbound SMS webhook ------------------------------------------------------------------------


@pytest.fixture
def hook_settings(settings):
    settings.SITE_URL = SITE_URL
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    return settings


@pytest.fixture
def people(site_a, enrol):
    """Dana (PHONE) and Sam (another number), with queued, sent and e-mail messages each, and
    Lee, enrolled without a phone."""
    enrolled_on = timezone.localdate() - timedelta(days=10)
    dana = enrol(
        site=site_a,
        code="NYC-0001",
        enrolled_on=enrolled_on,
        contact={"phone": "+1 (555) 010-4477"},
    )
    sam = enrol(
        site=site_a, code="NYC-0002", enrolled_on=enrolled_on, contact={"phone": "+1 555 010 9999"}
    )
    lee = enrol(
        site=site_a, code="NYC-0003", enrolled_on=enrolled_on, contact={"email": "lee@example.org"}
    )
    # Known rows only: enrolment may have planned invitations and reminders of its own.
    Message.objects.filter(assignment__participant__in=(dana, sam, lee)).delete()
    now = timezone.now()
    for participant in (dana, sam, lee):
        assignment = participant.assignments.first()
        for sequence, channel, status in [
            (0, Message.Channel.SMS, Message.Status.SENT),
            (1, Message.Channel.SMS, Message.Status.QUEUED),
            (2, Message.Channel.SMS, Message.Status.QUEUED),
            (1, Message.Channel.EMAIL, Message.Status.QUEUED),
        ]:
            Message.objects.create(
                assignment=assignment,
                sequence=sequence,
                channel=channel,
                status=status,
                scheduled_at=now + timedelta(days=sequence),
            )
    return {"dana": dana, "sam": sam, "lee": lee}


def inbound(body: str, phone: str = PHONE, **extra) -> dict:
    """The form fields Twilio posts for an incoming text."""
    return {
        "MessageSid": "SM" + "c" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": phone,
        "To": FROM_NUMBER,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }


def signature(params: dict, *, token: str = AUTH_TOKEN, url: str = SITE_URL + HOOK) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post_signed(client, params: dict, sig: str | None = None):
    headers = {"X-Twilio-Signature": signature(params) if sig is None else sig}
    return client.post(HOOK, params, headers=headers)


def snapshot():
    """Everything the webhook may change."""
    return (
        sorted(Participant.objects.values_list("code", "sms_opt_out_at")),
        sorted(
            Message.objects.values_list("assignment_id", "sequence", "channel", "status", "reason")
        ),
    )


def queued_sms_of(participant) -> int:
    return Message.objects.filter(
        assignment__participant=participant, channel="sms", status="queued"
    ).count()


def assert_empty_twiml(response) -> None:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith("<Response/>")


def test_a_signed_stop_opts_out_and_cancels_only_that_participants_queued_texts(
    client, hook_settings, people
):
    dana, sam, lee = people["dana"], people["sam"], people["lee"]

    response = post_signed(client, inbound("STOP"))

    assert_empty_twiml(response)
    dana.refresh_from_db()
    assert dana.sms_opt_out_at is not None
    assert dana.email_opt_out_at is None
    cancelled = Message.objects.filter(status="cancelled")
    assert sorted(
        cancelled.values_list("assignment__participant__code", "sequence", "channel", "reason")
    ) == [
        ("NYC-0001", 1, "sms", OPTED_OUT_REASON),
        ("NYC-0001", 2, "sms", OPTED_OUT_REASON),
    ]
    # The text already sent stays sent. Her messages are planned again on the channel left:
    # she has no e-mail address, so they are on record as not sent, "opted out".
    sent = Message.objects.filter(assignment__participant=dana, status="sent")
    assert list(sent.values_list("sequence", "channel")) == [(0, "sms")]
    replanned = Message.objects.filter(assignment__participant=dana).exclude(
        status__in=("sent", "cancelled")
    )
    assert replanned.exists()
    assert set(replanned.values_list("status", "reason")) == {("skipped", "opted out")}
    # Everyone else is untouched.
    for other in (sam, lee):
        other.refresh_from_db()
        assert other.sms_opt_out_at is None
        assert queued_sms_of(other) == 2


@pytest.mark.parametrize(
    "body", ["stop", " Stop ", "STOP.", "unsubscribe", "Cancel", "END", "quit", "StopAll"]
)
def test_every_standard_opt_out_keyword_counts_in_any_case(client, hook_settings, people, body):
    assert_empty_twiml(post_signed(client, inbound(body)))

    people["dana"].refresh_from_db()
    assert people["dana"].sms_opt_out_at is not None
    assert queued_sms_of(people["dana"]) == 0


def test_every_participant_with_the_number_is_opted_out_however_it_was_typed(
    client, hook_settings, people, site_a, enrol
):
    # A shared phone: a second participant enrolled with the same number, typed differently.
    partner = enrol(site=site_a, code="NYC-0004", contact={"phone": "555-010-4477"})

    post_signed(client, inbound("STOP"))

    partner.refresh_from_db()
    assert partner.sms_opt_out_at is not None
    assert Participant.objects.filter(sms_opt_out_at__isnull=False).count() == 2


def test_a_second_stop_keeps_the_first_opt_out_time(client, hook_settings, people):
    post_signed(client, inbound("STOP"))
    first = Participant.objects.get(code="NYC-0001").sms_opt_out_at

    assert sms_opt_out(phone=PHONE, now=timezone.now() + timedelta(days=1)) == 0
    assert Participant.objects.get(code="NYC-0001").sms_opt_out_at == first


def test_advanced_opt_out_type_counts_for_keywords_configured_at_twilio(
    client, hook_settings, people
):
    post_signed(client, inbound("PARAR", OptOutType="STOP"))

    people["dana"].refresh_from_db()
    assert people["dana"].sms_opt_out_at is not None


@pytest.mark.parametrize(
    "how",
    ["missing", "garbage", "other-token", "other-url", "tampered-body", "tampered-number"],
)
def test_an_unsigned_or_badly_signed_request_is_refused_and_changes_nothing(
    client, hook_settings, people, how
):
    params = inbound("STOP")
    before = snapshot()
    if how == "missing":
        response = client.post(HOOK, params)
    elif how == "garbage":
        response = post_signed(client, params, "bm90IGEgc2lnbmF0dXJl")
    elif how == "other-token":
        response = post_signed(client, params, signature(params, token="someone-elses-token"))
    elif how == "other-url":
        response = post_signed(client, params, signature(params, url="https://evil.example" + HOOK))
    elif how == "tampered-body":
        sig = signature(inbound("hello"))
        response = post_signed(client, params, sig)
    else:
        sig = signature(inbound("STOP", phone="+15550109999"))
        response = post_signed(client, params, sig)

    assert response.status_code == 403
    assert snapshot() == before


def test_without_an_auth_token_every_request_is_refused(client, hook_settings, people):
    # An empty key would let anyone compute a "valid" signature.
    hook_settings.TWILIO_AUTH_TOKEN = ""
    params = inbound("STOP")
    before = snapshot()

    response = post_signed(client, params, signature(params, token=""))

    assert response.status_code == 403
    assert snapshot() == before


def test_the_webhook_takes_only_post(client, hook_settings):
    assert client.get(HOOK).status_code == 405


@pytest.mark.parametrize("body", ["START", "unstop", "Yes"])
def test_start_opts_back_in(client, hook_settings, people, body):
    post_signed(client, inbound("STOP"))
    people["sam"].sms_opt_out_at = timezone.now()
    people["sam"].save(update_fields=["sms_opt_out_at"])

    assert_empty_twiml(post_signed(client, inbound(body)))

    people["dana"].refresh_from_db()
    assert people["dana"].sms_opt_out_at is None
    # Texts cancelled by the STOP stay cancelled; those to come are planned as texts again.
    cancelled = Message.objects.filter(assignment__participant=people["dana"], status="cancelled")
    assert set(cancelled.values_list("sequence", "reason")) == {
        (1, OPTED_OUT_REASON),
        (2, OPTED_OUT_REASON),
    }
    assert queued_sms_of(people["dana"]) > 0
    # Sam, who did not write, stays opted out.
    people["sam"].refresh_from_db()
    assert people["sam"].sms_opt_out_at is not None


@pytest.mark.parametrize(
    ("body", "phone"),
    [
        ("STOP", "+15550107777"),  # a number nobody enrolled with
        ("STOP", "12345"),  # too short to compare: must not match the contacts without a phone
        ("STOP", ""),
        ("Stop sending me these at night please", PHONE),  # not a keyword
        ("Thanks, done!", PHONE),
    ],
)
def test_other_numbers_and_texts_get_the_same_reply_and_change_nothing(
    client, hook_settings, people, body, phone
):
    before = snapshot()

    response = post_signed(client, inbound(body, phone=phone))

    assert_empty_twiml(response)
    assert snapshot() == before
    # The same reply as a STOP that acted: the answer tells nothing about who is enrolled.
    assert response.content == post_signed(client, inbound("STOP")).content


def test_the_webhook_logs_neither_the_number_nor_the_text(client, hook_settings, people, caplog):
    caplog.set_level(logging.DEBUG)

    post_signed(client, inbound("STOP"))
    post_signed(client, inbound("Stop it", phone="+15550107777"), "bad-signature")

    logged = caplog.text
    assert "opted out" in logged
    for secret in (PHONE, PHONE[2:], "0104477", "0107777", "Stop it"):
        assert secret not in logged


@pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="row locks: PostgreSQL",
)
def test_an_opt_out_locks_everyone_with_the_number_in_pk_order_first(people, site_a, enrol):
    """A shared number: the participants' rows are locked in pk order before any is changed,
    the order every other path that locks several participants keeps (no deadlock)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    enrol(site=site_a, code="NYC-0004", contact={"phone": "555-010-4477"})
    with CaptureQueriesContext(connection) as queries:
        assert sms_opt_out(phone=PHONE, now=timezone.now()) == 2
    statements = [q["sql"] for q in queries.captured_queries]
    lock = next(n for n, sql in enumerate(statements) if "FOR NO KEY UPDATE" in sql)
    change = next(n for n, sql in enumerate(statements) if sql.startswith("UPDATE"))
    assert lock < change
    assert statements[lock].endswith("ORDER BY 1 ASC FOR NO KEY UPDATE")  # 1: the pk
