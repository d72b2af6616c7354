"""Text messages through a small backend interface, chosen by ``settings.SMS_BACKEND``.

A file backend (the embedded default: one file per message in ``VAR_DIR/sms-outbox``, like
Django's file e-mail backend), an in-memory one for tests, a disabled one (production's default
until a provider is configured) and Twilio's. A backend implements ``send`` and returns the
provider's message id; a provider backend raises ``SmsTransientError`` (not sent this time: try
again later, unless ``may_have_been_sent``) or ``SmsPermanentError`` (never retry this message)
when the provider refuses or cannot be reached.
"""

import itertools
import uuid
from pathlib import Path

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string


class SmsUnavailable(Exception):
    """No SMS provider is configured: callers fall back to e-mail or skip."""


class SmsError(Exception):
    """A message the provider did not accept. ``reason`` is short and safe to store and log: it
    never holds the phone number or the message text (provider messages may quote the number,
    so they are dropped, and the original exception is not chained)."""

    def __init__(self, reason: str, *, status: int | None = None, code: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status  # the provider's HTTP status, when there was a response
        self.code = code  # the provider's own error code, when it gave one


class SmsTransientError(SmsError):
    """Not sent this time: the network, rate limiting (HTTP 429) or a provider failure (5xx).

    ``may_have_been_sent`` is true unless the request surely never reached the provider (the
    connection was refused, the name did not resolve, connecting timed out, or a rate limit):
    after a read time-out, a dropped connection or a 5xx the provider may have accepted the
    message, and sending again could deliver it twice, so the sender must not retry it."""

    def __init__(self, reason: str, *, may_have_been_sent: bool = False, **kwargs):
        super().__init__(reason, **kwargs)
        self.may_have_been_sent = may_have_been_sent


class SmsPermanentError(SmsError):
    """Never retry this message: an invalid or unreachable number, a recipient who replied STOP,
    or any other refusal (4xx other than 429)."""


class BaseSmsBackend:
    def send(self, *, to: str, body: str) -> str:
        raise NotImplementedError


class DisabledBackend(BaseSmsBackend):
    def send(self, *, to: str, body: str) -> str:
        raise SmsUnavailable("SMS_BACKEND is not configured")


class FileBackend(BaseSmsBackend):
    """Writes each message to its own file: a laptop's outbox, never the log."""

    def send(self, *, to: str, body: str) -> str:
        folder = Path(getattr(settings, "SMS_FILE_PATH", settings.VAR_DIR / "sms-outbox"))
        folder.mkdir(parents=True, exist_ok=True)
        message_id = uuid.uuid4().hex
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        (folder / f"{stamp}-{message_id}.txt").write_text(f"To: {to}\n\n{body}\n")
        return message_id


outbox: list[dict] = []  # LocmemBackend's messages (tests read and clear it)
_ids = itertools.count(1)


class LocmemBackend(BaseSmsBackend):
    def send(self, *, to: str, body: str) -> str:
        message_id = f"locmem-{next(_ids)}"
        outbox.append({"to": to, "body": body, "id": message_id})
        return message_id


def sms_backend() -> BaseSmsBackend:
    return import_string(settings.SMS_BACKEND)()


def sms_send(*, to: str, body: str) -> str:
    return sms_backend().send(to=to, body=body)


# --- Twilio -----------------------------------------------------------------------------------
# Seconds to connect and to wait for Twilio's answer: a worker never hangs on one message.
TWILIO_TIMEOUT = 15
# Twilio error codes (https://www.twilio.com/docs/api/errors) worth naming in a reason.
TWILIO_ERRORS = {
    20003: "provider authentication failed (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
    21211: "invalid phone number",
    21214: "phone number cannot be reached",
    21408: "sending to this region is not enabled",
    21606: "the sender number cannot send SMS",
    21608: "trial account: the number is not verified",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "the number cannot be reached from the sender",
    21614: "not a mobile number",
    21617: "message too long",
}


class TwilioBackend(BaseSmsBackend):
    """Twilio's Messages API through the ``twilio`` package.

    Settings: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and a sender,
    ``TWILIO_FROM_NUMBER`` and/or ``TWILIO_MESSAGING_SERVICE_SID`` (both may be given: the
    number is then used from the service's pool). ``http_client`` (a ``twilio.http.HttpClient``)
    replaces the network, for tests.
    """

    def __init__(self, *, http_client=None):
        self.account_sid = getattr(settings, "TWILIO_ACCOUNT_SID", "")
        self.auth_token = getattr(settings, "TWILIO_AUTH_TOKEN", "")
        self.from_number = getattr(settings, "TWILIO_FROM_NUMBER", "")
        self.messaging_service_sid = getattr(settings, "TWILIO_MESSAGING_SERVICE_SID", "")
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self.auth_token),
            )
            if not value
        ]
        if not (self.from_number or self.messaging_service_sid):
            missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            raise ImproperlyConfigured(
                "SMS_BACKEND is surveys.sms.TwilioBackend, which needs " + ", ".join(missing) + "."
            )
        self._http_client = http_client
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            http_client = self._http_client or TwilioHttpClient(timeout=TWILIO_TIMEOUT)
            self._client = Client(self.account_sid, self.auth_token, http_client=http_client)
        return self._client

    def send(self, *, to: str, body: str) -> str:
        from twilio.base.exceptions import TwilioException

        sender = {}
        if self.from_number:
            sender["from_"] = self.from_number
        if self.messaging_service_sid:
            sender["messaging_service_sid"] = self.messaging_service_sid
        try:
            message = self.client.messages.create(to=to, body=body, **sender)
        except requests.RequestException as exc:
            # "from None": the original's text and chain stay out of logs and tracebacks.
            raise _network_error(exc) from None
        except TwilioException as exc:
            raise _twilio_error(exc) from None
        return message.sid


def _network_error(exc: requests.RequestException) -> SmsTransientError:
    """Only a connection never made is safe to try again: the request cannot have reached the
    provider. Any other failure (no answer in time, the connection dropped or reset, a broken
    answer, an error this code does not know) may come after the provider accepted the
    message, and sending it again could deliver it twice."""
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NameResolutionError

    if isinstance(exc, requests.ConnectTimeout):
        return SmsTransientError("provider unreachable (connection timed out)")
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        # urllib3's NewConnectionError (refused, no route) and NameResolutionError (DNS) are
        # ConnectTimeoutErrors: the connection was never made.
        if isinstance(cause.reason, NameResolutionError):
            return SmsTransientError("provider unreachable (name not resolved)")
        if isinstance(cause.reason, ConnectTimeoutError):
            return SmsTransientError("provider unreachable (connection error)")
    if isinstance(exc, requests.Timeout):
        return SmsTransientError("provider did not answer in time", may_have_been_sent=True)
    if isinstance(exc, requests.ConnectionError):
        return SmsTransientError("connection to provider lost", may_have_been_sent=True)
    return SmsTransientError(f"network error ({type(exc).__name__})", may_have_been_sent=True)


def _twilio_error(exc: Exception) -> SmsError:
    """TwilioRestException or TwilioServiceException (both carry status and code) as one of
    ours, by HTTP status. A rate limit (429) is refused before anything is created: retried.
    A provider failure (5xx) comes after Twilio had the request and may have accepted the
    message; any other TwilioException (no status) does not say whether the request got
    there: both may have been sent."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    status = status if isinstance(status, int) else None
    code = code if isinstance(code, int) else None
    if status is None:
        return SmsTransientError("provider client error", may_have_been_sent=True)
    named = TWILIO_ERRORS.get(code) if code is not None else None
    detail = f"HTTP {status}" + (f", Twilio error {code}" if code and code != status else "")
    if status == 429:
        return SmsTransientError(f"provider rate limit ({detail})", status=status, code=code)
    if status >= 500:
        return SmsTransientError(
            f"provider error ({detail})", status=status, code=code, may_have_been_sent=True
        )
    if named:
        return SmsPermanentError(f"{named} ({detail})", status=status, code=code)
    return SmsPermanentError(f"provider refused the message ({detail})", status=status, code=code)
