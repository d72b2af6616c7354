"""Text messages through a small backend interface, chosen by ``settings.SMS_BACKEND``.

Backends here need no provider: a file backend (the embedded default: one file per message in
``VAR_DIR/sms-outbox``, like Django's file e-mail backend), an in-memory one for tests, and a
disabled one (production's default until a provider is configured). A provider backend
implements ``send`` and returns the provider's message id.
"""

import itertools
import uuid
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string


class SmsUnavailable(Exception):
    """No SMS provider is configured: callers fall back to e-mail or skip."""


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
